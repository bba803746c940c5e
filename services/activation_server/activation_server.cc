#include "services/activation_server/activation_server.h"

#include <grpcpp/health_check_service_interface.h>

#include <filesystem>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/sweep.h"
#include "core/training/run_saes.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/wire/cursor_text.h"
#include "core/wire/run_digest.h"
#include "services/common/stream_protocol.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {
namespace {

// A random, non-zero id for this server process.
uint64_t NewIncarnation() {
  std::random_device device;
  uint64_t id = 0;
  while (id == 0) id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return id;
}

// Where generation starts: the flag's cursor, the cursor file's, or the further of the two.
absl::StatusOr<std::optional<data::ShardCursor>> StartCursor(
    const ActivationServerOptions& options) {
  std::optional<data::ShardCursor> start = options.resume_cursor;
  if (!options.cursor_file.empty() && std::filesystem::exists(options.cursor_file)) {
    SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(options.cursor_file));
    absl::StatusOr<data::ShardCursor> saved = wire::CursorFromHex(text);
    if (!saved.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--cursor-file ", options.cursor_file, ": ", saved.status().message()));
    }
    if (!start || saved->IsAfter(*start)) start = *saved;
  }
  if (start &&
      (start->shard_index != options.shard_index || start->shard_count != options.shard_count)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the resume cursor belongs to shard ", start->shard_index, "/", start->shard_count,
        ", this server generates shard ", options.shard_index, "/", options.shard_count));
  }
  return start;
}

// The run's evaluations: one SAE, or each SAE of a run of many (`saes`) on its own hook.
absl::StatusOr<std::unique_ptr<SaeEvaluations>> MakeEvaluations(
    const config::RunConfig& config, const training::RunSaes* saes,
    const training::RunAssets& assets) {
  if (saes == nullptr) {
    SAE_ASSIGN_OR_RETURN(std::unique_ptr<training::RunEvaluator> evaluator,
                         training::RunEvaluator::Create(config, assets));
    SAE_ASSIGN_OR_RETURN(sparse::TrainerOptions trainer_options,
                         training::TrainerOptionsFor(config));
    return std::make_unique<SaeEvaluations>(std::move(evaluator), trainer_options.sae);
  }
  std::map<std::string, SaeEvaluations::Sae> evaluated;
  for (const training::RunSae& sae : saes->saes) {
    SaeEvaluations::Sae entry;
    SAE_ASSIGN_OR_RETURN(entry.evaluator, training::RunEvaluator::Create(sae.config, assets));
    SAE_ASSIGN_OR_RETURN(sparse::TrainerOptions trainer_options,
                         training::TrainerOptionsFor(sae.config));
    entry.options = trainer_options.sae;
    evaluated[sae.name] = std::move(entry);
  }
  return std::make_unique<SaeEvaluations>(std::move(evaluated));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ActivationServer>> ActivationServer::Start(
    ActivationServerOptions options) {
  std::unique_ptr<ActivationServer> server(new ActivationServer());
  config::RunConfig& config = server->config_;
  config = std::move(options.config);
  if (options.shard_count < 1 || options.shard_index >= options.shard_count) {
    return absl::InvalidArgumentError(absl::StrCat("--shard-index ", options.shard_index,
                                                   " of --shard-count ", options.shard_count,
                                                   " does not exist"));
  }
  if (config.source.Given("activation_servers") &&
      config.activation_servers != static_cast<int64_t>(options.shard_count)) {
    return config::ConfigKeyError(
        config, "activation_servers",
        absl::StrCat("is ", config.activation_servers, " but --shard-count is ",
                     options.shard_count, "; they must agree"));
  }
  if (config.use_cached_activations) {
    return config::ConfigKeyError(config, "use_cached_activations",
                                  "an activation server runs the model; train from a cache with "
                                  "`saectl train` instead");
  }
  if (options.max_batches_per_call < 1) {
    return absl::InvalidArgumentError("--max-batches-per-call must be at least 1");
  }
  SAE_ASSIGN_OR_RETURN(std::optional<data::ShardCursor> start, StartCursor(options));
  // A run of many SAEs (core/config/sweep.h): the model runs once per context and captures
  // every hook of the run, the hooks' columns side by side in each row (training/run_saes.h).
  const bool many = config::TrainsManySaes(config);
  training::RunSaes saes;
  if (many) {
    SAE_ASSIGN_OR_RETURN(saes, training::ResolveRunSaes(config));
    SAE_RETURN_IF_ERROR(training::ResolveRunConfig(config));  // the digest is of the resolved run
    config::RunConfig first = saes.saes.front().config;
    SAE_ASSIGN_OR_RETURN(server->assets_, training::LoadRunAssets(first));
  } else {
    SAE_ASSIGN_OR_RETURN(server->assets_, training::LoadRunAssets(config));
  }

  server->run_.run_id = options.run_id.empty() ? wire::DefaultRunId(config) : options.run_id;
  server->run_.config_digest = wire::RunConfigDigest(config);
  server->run_.train_batch_size = config.train_batch_size;
  server->run_.max_batches_per_call = options.max_batches_per_call;
  server->run_.other_runs_are_early = options.other_runs_are_early;
  if (options.metrics != nullptr) {
    SAE_ASSIGN_OR_RETURN(server->metrics_,
                         ServerMetrics::Create(*options.metrics, server->run_.run_id,
                                               static_cast<int>(options.shard_index)));
  }

  // Evaluations (EvaluateSae): the contexts are read now, so that a run whose evaluation data
  // is too small fails at the start, as `saectl train` does.
  SAE_ASSIGN_OR_RETURN(server->evaluations_,
                       MakeEvaluations(config, many ? &saes : nullptr, server->assets_));

  ActivationFeedOptions feed;
  feed.store = training::ActivationStoreOptionsFor(many ? saes.saes.front().config : config,
                                                   server->assets_.hook);
  feed.store.more_hooks = saes.more_hooks;
  feed.shard_index = options.shard_index;
  feed.shard_count = options.shard_count;
  feed.start = start;
  feed.cursor_file = options.cursor_file;
  SAE_ASSIGN_OR_RETURN(server->feed_,
                       ActivationFeed::Start(server->assets_.model.get(), server->assets_.dataset,
                                             std::move(feed), server->metrics_.get()));
  server->sessions_ = std::make_unique<ConsumerSessions>(NewIncarnation(), server->metrics_.get());
  server->service_ = std::make_unique<ActivationServiceImpl>(
      server->run_, server->feed_.get(), server->sessions_.get(), server->metrics_.get(),
      server->evaluations_.get(), options.security.auth_token);
  server->service_->SetTrainerGeneration(options.trainer_generation);

  SAE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                       rpc::MakeServerCredentials(options.security));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  stream::ConfigureStreamServer(builder);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (in use, or not a local address)"));
  }
  server->server_->GetHealthCheckService()->SetServingStatus(stream::kActivationServiceName, true);
  server->server_->GetHealthCheckService()->SetServingStatus(true);

  if (options.metrics != nullptr) {
    server->collected_feed_ = std::make_shared<std::atomic<ActivationFeed*>>(server->feed_.get());
    options.metrics->AddCollector(
        [feed = server->collected_feed_, metrics = server->metrics_.get()] {
          ActivationFeed* current = feed->load();
          if (current == nullptr) return;
          const data::MixingBufferFill fill = current->fill();
          metrics->buffer_fill->Set(fill.fraction());
          metrics->buffer_activations->Set(static_cast<double>(fill.stored));
        });
  }
  spdlog::info(
      "activation server for run {} (config {}) shard {}/{} listening on port {}; "
      "generating {} (d_in {}) from {}",
      server->run_.run_id, server->run_.config_digest, options.shard_index, options.shard_count,
      server->port_, absl::StrJoin(config::RunHookPoints(config), " + "), server->feed_->d_in(),
      server->feed_->start_cursor().DebugString());
  return server;
}

ActivationServer::~ActivationServer() { Shutdown(absl::ZeroDuration()); }

void ActivationServer::Shutdown(absl::Duration grace) {
  std::lock_guard<std::mutex> lock(shutdown_mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(stream::kActivationServiceName, false);
    server_->GetHealthCheckService()->SetServingStatus(false);
  }
  if (service_ != nullptr) service_->BeginShutdown();
  if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  if (collected_feed_ != nullptr) collected_feed_->store(nullptr);
  if (feed_ != nullptr) {
    feed_->Stop();
    spdlog::info(
        "activation server stopped at {} after {} tokens generated, {} activations "
        "served",
        feed_->frontier().DebugString(), feed_->tokens_generated(), feed_->rows_served());
  }
}

}  // namespace sae::activation_server
