#include "services/trainer/distributed_training.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/saelens.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/training/training_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/wire/cursor_text.h"
#include "core/wire/run_digest.h"
#include "nlohmann/json.hpp"
#include "services/trainer/prefetch_queue.h"
#include "services/trainer/process_group.h"
#include "services/trainer/stream_metrics.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string NewSessionId() {
  std::random_device device;
  char id[17];
  std::snprintf(id, sizeof(id), "%08x%08x", device(), device());
  return id;
}

absl::Status CheckGroup(const DistributedTrainingOptions& o) {
  const config::RunConfig& c = o.config;
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank ", o.rank, " of --world-size ", o.world_size, " does not exist"));
  }
  if (c.source.Given("trainers") && c.trainers != o.world_size) {
    return config::ConfigKeyError(c, "trainers",
                                  absl::StrCat("is ", c.trainers, " but --world-size is ",
                                               o.world_size, "; they must agree"));
  }
  if (c.train_batch_size % o.world_size != 0) {
    return config::ConfigKeyError(
        c, "train_batch_size",
        absl::StrCat(c.train_batch_size, " does not split evenly over ", o.world_size,
                     " trainers (the batch is global: each rank takes train_batch_size / "
                     "trainers)"));
  }
  if (o.servers.empty()) {
    return absl::InvalidArgumentError("--servers names no activation server");
  }
  if (c.source.Given("activation_servers") &&
      c.activation_servers != static_cast<int64_t>(o.servers.size())) {
    return config::ConfigKeyError(c, "activation_servers",
                                  absl::StrCat("is ", c.activation_servers, " but --servers names ",
                                               o.servers.size(), "; they must agree"));
  }
  if (o.world_size > 1 && o.rendezvous.empty()) {
    return absl::InvalidArgumentError("--rendezvous HOST:PORT is needed for a world of > 1");
  }
  if (o.output_dir.empty() && o.rank == 0) {
    return absl::InvalidArgumentError("--output names no folder");
  }
  return absl::OkStatus();
}

// Every rank's furthest cursor per server, gathered with one all-reduce (each rank fills only
// its own slot), reduced to the furthest per server. Collective: every rank calls it at the
// same step.
absl::StatusOr<std::vector<std::string>> GatherCursors(
    const std::vector<std::unique_ptr<ActivationStreamReader>>& readers,
    sparse::Collective* group) {
  constexpr int64_t kSlot = 64;  // bytes per cursor; ToBytes is about 20
  const int world = group != nullptr ? group->world_size() : 1;
  const int rank = group != nullptr ? group->rank() : 0;
  const int64_t servers = static_cast<int64_t>(readers.size());
  at::Tensor slots = at::zeros({world, servers, kSlot + 1}, at::kInt);
  {
    auto mine = slots.accessor<int32_t, 3>()[rank];
    for (int64_t s = 0; s < servers; ++s) {
      const std::string bytes = readers[s]->furthest_cursor();
      if (static_cast<int64_t>(bytes.size()) > kSlot) {
        return absl::InternalError("a shard cursor is longer than 64 bytes");
      }
      mine[s][0] = static_cast<int32_t>(bytes.size());
      for (int64_t i = 0; i < static_cast<int64_t>(bytes.size()); ++i) {
        mine[s][i + 1] = static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
      }
    }
  }
  if (world > 1) SAE_RETURN_IF_ERROR(group->AllReduceSum(slots));
  std::vector<std::string> furthest(servers);
  const auto all = slots.accessor<int32_t, 3>();
  for (int64_t s = 0; s < servers; ++s) {
    std::optional<data::ShardCursor> best;
    for (int r = 0; r < world; ++r) {
      std::string bytes(static_cast<size_t>(all[r][s][0]), '\0');
      for (int64_t i = 0; i < static_cast<int64_t>(bytes.size()); ++i) {
        bytes[static_cast<size_t>(i)] = static_cast<char>(all[r][s][i + 1]);
      }
      if (bytes.empty()) continue;
      SAE_ASSIGN_OR_RETURN(data::ShardCursor cursor, data::ShardCursor::FromBytes(bytes));
      if (!best || cursor.IsAfter(*best)) best = cursor;
    }
    furthest[s] = best ? wire::CursorToHex(*best) : "";
  }
  return furthest;
}

// The cursors a checkpoint recorded (kStreamCursorsKey), as ShardCursor bytes.
absl::StatusOr<std::vector<std::string>> CheckpointCursors(
    const std::map<std::string, std::string>& extra, const std::string& dir) {
  std::vector<std::string> cursors;
  auto found = extra.find(kStreamCursorsKey);
  if (found == extra.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, " is not a checkpoint of a distributed run (no ", kStreamCursorsKey, ")"));
  }
  nlohmann::json list = nlohmann::json::parse(found->second, nullptr, false);
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": ", kStreamCursorsKey, " is not a list"));
  }
  for (const nlohmann::json& hex : list) {
    if (!hex.is_string() || hex.get<std::string>().empty()) continue;
    SAE_ASSIGN_OR_RETURN(data::ShardCursor cursor, wire::CursorFromHex(hex.get<std::string>()));
    cursors.push_back(cursor.ToBytes());
  }
  return cursors;
}

// One JSON line per trained batch (DistributedTrainingOptions::batch_log).
nlohmann::json BatchRecord(const StreamedBatch& batch, int rank, const sparse::StepMetrics& m) {
  at::Tensor values = batch.rows.to(at::kDouble);
  return {{"rank", rank},
          {"step", m.step},
          {"server", batch.server},
          {"incarnation", absl::StrCat(batch.incarnation)},
          {"sequence", batch.sequence},
          {"offset", batch.stream_offset},
          {"rows", batch.rows.size(0)},
          {"resent", batch.resent},
          {"sum", values.sum().item<double>()},
          {"sum_sq", values.pow(2).sum().item<double>()},
          {"overall_loss", m.overall_loss},
          {"mse_loss", m.mse_loss},
          {"l0", m.l0}};
}

}  // namespace

absl::StatusOr<DistributedTrainingResult> RunDistributedTraining(
    DistributedTrainingOptions options) {
  const auto start = Clock::now();
  config::RunConfig& config = options.config;
  SAE_RETURN_IF_ERROR(CheckGroup(options));
  SAE_RETURN_IF_ERROR(training::ResolveRunConfig(config));
  SAE_ASSIGN_OR_RETURN(sparse::TrainerOptions trainer_options, training::TrainerOptionsFor(config));
  const std::string run_id = options.run_id.empty() ? wire::DefaultRunId(config) : options.run_id;
  const int rank = options.rank;
  const int64_t total_steps = config::TotalTrainingSteps(config);
  const int64_t rank_batch = config.train_batch_size / options.world_size;
  const int64_t servers = static_cast<int64_t>(options.servers.size());
  if (rank == 0) {
    SAE_RETURN_IF_ERROR(MakeDirectories(options.output_dir));
    SAE_RETURN_IF_ERROR(
        WriteFileAtomically(options.output_dir + "/run.yaml", config::ToYaml(config)));
  }

  // A pretrained SAE to start from (from_pretrained_path), checked against the config.
  std::optional<sparse::SaeParameters> pretrained;
  if (!options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(pretrained, training::PretrainedSaeFor(config, trainer_options));
  }
  // Batches received ahead of the step, and the share of them one call may lease, so that
  // every server has calls in flight.
  const int prefetch = options.prefetch_batches > 0
                           ? options.prefetch_batches
                           : static_cast<int>(std::max<int64_t>(4, 2 * servers));
  const int lease =
      std::max(1, std::min(options.max_batches_per_call, prefetch / static_cast<int>(servers)));
  // The demand is set once the starting step is known; the readers wait until then.
  auto queue = std::make_unique<PrefetchQueue>(prefetch, 0);
  // An abort closes the queue, which ends the readers and every wait for a batch.
  auto aborted = [&] { return options.abort != nullptr && options.abort->load(); };
  const absl::Status abandoned =
      absl::CancelledError(absl::StrCat("run ", run_id, " generation ", options.generation,
                                        ": abandoned (the controller moved the group on)"));
  struct AbortWatch {
    std::atomic<bool> done{false};
    std::thread thread;
    ~AbortWatch() {
      done = true;
      if (thread.joinable()) thread.join();
    }
  } abort_watch;
  if (options.abort != nullptr) {
    abort_watch.thread = std::thread([&abort_watch, abort = options.abort, q = queue.get()] {
      while (!abort_watch.done.load()) {
        if (abort->load()) {
          q->Close();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  std::unique_ptr<training::TrainingMetrics> series;
  std::unique_ptr<PrefetchMetrics> prefetch_metrics;
  std::vector<std::unique_ptr<ServerStreamMetrics>> stream_metrics(servers);
  if (options.metrics != nullptr) {
    SAE_ASSIGN_OR_RETURN(series, training::TrainingMetrics::Create(*options.metrics, run_id, rank));
    SAE_ASSIGN_OR_RETURN(prefetch_metrics, PrefetchMetrics::Create(*options.metrics, run_id, rank));
    for (int64_t s = 0; s < servers; ++s) {
      SAE_ASSIGN_OR_RETURN(
          stream_metrics[s],
          ServerStreamMetrics::Create(*options.metrics, run_id, rank, static_cast<int>(s)));
    }
  }

  // The group.
  std::unique_ptr<ProcessGroupCollective> group;
  sparse::Collective* collective = nullptr;
  if (options.world_size > 1) {
    ProcessGroupOptions group_options;
    group_options.rank = rank;
    group_options.world_size = options.world_size;
    group_options.rendezvous = options.rendezvous;
    group_options.bind_address = options.bind_address;
    group_options.backend = options.backend;
    group_options.rendezvous_timeout = options.rendezvous_timeout;
    group_options.collective_timeout = options.collective_timeout;
    group_options.store_prefix = absl::StrCat(run_id, "/g", options.generation, "/");
    group_options.abort = options.abort;
    SAE_ASSIGN_OR_RETURN(group, ProcessGroupCollective::Create(group_options));
    collective = group.get();
    spdlog::info("rank {} of {} joined the {} group at {}", rank, options.world_size,
                 BackendName(group->backend()), options.rendezvous);
  }
  std::unique_ptr<sparse::SaeTrainer> trainer =
      pretrained ? std::make_unique<sparse::SaeTrainer>(trainer_options, *pretrained, collective)
                 : std::make_unique<sparse::SaeTrainer>(trainer_options, collective);
  std::vector<std::string> known_cursors;
  if (options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(auto extra, training::ReadCheckpoint(*options.resume_dir, *trainer));
    SAE_ASSIGN_OR_RETURN(known_cursors, CheckpointCursors(extra, *options.resume_dir));
    spdlog::info("resumed from {} at step {} ({} tokens)", *options.resume_dir, trainer->step(),
                 trainer->tokens_seen());
  }

  // The readers, one per server.
  const std::string session = NewSessionId();
  std::vector<std::unique_ptr<ActivationStreamReader>> readers;
  struct Shutdown {
    PrefetchQueue* queue;
    std::vector<std::unique_ptr<ActivationStreamReader>>* readers;
    ~Shutdown() {
      queue->Close();
      for (auto& reader : *readers) reader->Stop();
    }
  } shutdown{queue.get(), &readers};
  for (int64_t s = 0; s < servers; ++s) {
    ActivationStreamOptions stream;
    stream.address = options.servers[s];
    stream.server_index = static_cast<int>(s);
    stream.run_id = run_id;
    stream.config_digest = wire::RunConfigDigest(config);
    stream.rank = rank;
    stream.world_size = options.world_size;
    stream.session = session;
    stream.generation = options.generation;
    stream.wire_dtype = config.wire_dtype;
    stream.batch_size = rank_batch;
    stream.d_in = trainer_options.sae.d_in;
    stream.lease = lease;
    stream.known_cursors = known_cursors;
    stream.call_timeout = options.call_timeout;
    stream.server_deadline = options.server_deadline;
    stream.security = options.security;
    SAE_ASSIGN_OR_RETURN(auto reader, ActivationStreamReader::Start(std::move(stream), queue.get(),
                                                                    stream_metrics[s].get()));
    readers.push_back(std::move(reader));
  }
  if (aborted()) return abandoned;
  SAE_ASSIGN_OR_RETURN(const int64_t tokens_trained_before,
                       AllReduceMax(options.tokens_trained_before, collective));
  if (options.on_group_ready) options.on_group_ready(tokens_trained_before);
  queue->AddDemand(total_steps - trainer->step());

  // Batches taken ahead of their step (rank 0's initial sample), then the queue.
  std::deque<StreamedBatch> held;
  double wait_seconds = 0;
  auto next_batch = [&]() -> absl::StatusOr<StreamedBatch> {
    if (!held.empty()) {
      StreamedBatch batch = std::move(held.front());
      held.pop_front();
      return batch;
    }
    const auto wait_start = Clock::now();
    absl::StatusOr<StreamedBatch> batch = queue->Pop();
    const double waited = Seconds(wait_start);
    wait_seconds += waited;
    if (series) series->RecordWaitForData(waited);
    return batch;
  };

  if (!options.resume_dir && !config.from_pretrained_path) {
    // The seed initialises b_dec from its first storage buffer (half the mixing buffer); rank 0
    // draws it from its stream, keeps the batches for its first steps, and the trainer
    // broadcasts the result.
    at::Tensor sample;
    if (rank == 0) {
      const int64_t sample_rows = std::max<int64_t>(1, config.n_batches_in_buffer / 2) *
                                  config.store_batch_size * config.context_size;
      const int64_t wanted = std::min<int64_t>((sample_rows + rank_batch - 1) / rank_batch,
                                               std::max<int64_t>(total_steps, 1));
      std::vector<at::Tensor> rows;
      for (int64_t i = 0; i < wanted; ++i) {
        absl::StatusOr<StreamedBatch> batch = next_batch();
        if (!batch.ok()) return aborted() ? abandoned : batch.status();
        rows.push_back(batch->rows);
        held.push_back(*std::move(batch));
      }
      sample = at::cat(rows);
      sample = sample.narrow(0, 0, std::min<int64_t>(sample.size(0), sample_rows));
    }
    absl::Status initialized = trainer->InitializeDecoderBias(sample);
    if (!initialized.ok()) return aborted() ? abandoned : initialized;
  }

  std::unique_ptr<std::ofstream> batch_log;
  if (!options.batch_log.empty()) {
    batch_log = std::make_unique<std::ofstream>(options.batch_log, std::ios::app);
    if (!*batch_log) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write --batch-log ", options.batch_log));
    }
  }

  std::vector<int64_t> checkpoint_steps;
  for (int64_t i = 1; i <= config.n_checkpoints; ++i) {
    checkpoint_steps.push_back(i * total_steps / config.n_checkpoints);
  }
  const std::string checkpoint_root = std::filesystem::path(config.checkpoint_path).is_absolute()
                                          ? config.checkpoint_path
                                          : options.output_dir + "/" + config.checkpoint_path;
  DistributedTrainingResult result;
  auto checkpoint = [&]() -> absl::Status {
    SAE_ASSIGN_OR_RETURN(std::vector<std::string> cursors, GatherCursors(readers, collective));
    result.cursors = cursors;
    if (rank != 0) return absl::OkStatus();
    const std::string dir = checkpoint_root + "/" + training::CheckpointName(trainer->step());
    SAE_RETURN_IF_ERROR(MakeDirectories(checkpoint_root));
    SAE_RETURN_IF_ERROR(training::WriteCheckpoint(
        *trainer, config, {{kStreamCursorsKey, nlohmann::json(cursors).dump()}}, dir));
    result.last_checkpoint = dir;
    spdlog::info("checkpoint at step {}: {}", trainer->step(), dir);
    if (options.on_checkpoint)
      SAE_RETURN_IF_ERROR(options.on_checkpoint(dir, trainer->step(), false));
    return absl::OkStatus();
  };
  // Resampling (rank 0) takes batches beyond the run's steps: they are asked for as needed.
  sparse::BatchSource resample_source = [&]() -> absl::StatusOr<at::Tensor> {
    queue->AddDemand(1);
    SAE_ASSIGN_OR_RETURN(StreamedBatch batch, next_batch());
    return batch.rows;
  };

  const int64_t first_step = trainer->step();
  const auto loop_start = Clock::now();
  bool first = true;
  while (trainer->step() < total_steps) {
    if (aborted()) return abandoned;
    absl::StatusOr<StreamedBatch> batch = next_batch();
    if (!batch.ok() && aborted()) return abandoned;
    if (prefetch_metrics) prefetch_metrics->queue_batches->Set(queue->depth());
    // Every rank learns whether some rank must stop or has no data, before the step's
    // collectives, so that all of them leave at the same step.
    const bool stop = options.stop != nullptr && options.stop->load();
    at::Tensor flags = at::tensor({stop ? 1.0f : 0.0f, batch.ok() ? 0.0f : 1.0f});
    if (collective != nullptr) {
      absl::Status reduced = collective->AllReduceSum(flags);
      if (!reduced.ok()) return aborted() ? abandoned : reduced;
      group->TakeCollectiveSeconds();
    }
    if (!batch.ok()) return batch.status();
    if (flags[1].item<float>() > 0) {
      return absl::UnavailableError(
          "another trainer rank could not get its batch; its log says why");
    }
    if (flags[0].item<float>() > 0) {
      SAE_RETURN_IF_ERROR(checkpoint());
      result.stopped = true;
      break;
    }
    const auto step_start = Clock::now();
    absl::StatusOr<sparse::StepMetrics> stepped = trainer->Step(batch->rows, resample_source);
    if (!stepped.ok()) return aborted() ? abandoned : stepped.status();
    const sparse::StepMetrics& m = *stepped;
    const double step_seconds = Seconds(step_start);
    if (group != nullptr) {
      const double reduce_seconds = group->TakeCollectiveSeconds();
      result.collective_seconds += reduce_seconds;
      if (series) series->RecordAllReduce(reduce_seconds);
    }
    if (series) series->RecordStep(m, step_seconds, config.train_batch_size);
    if (batch_log) *batch_log << BatchRecord(*batch, rank, m).dump() << "\n";
    if (first) result.first = m;
    first = false;
    result.last = m;
    const double elapsed = Seconds(loop_start);
    const double tps =
        elapsed > 0
            ? static_cast<double>((trainer->step() - first_step) * config.train_batch_size) /
                  elapsed
            : 0;
    if (options.on_step) options.on_step(m, tps, total_steps);
    if (rank == 0 && (trainer->step() % std::max<int64_t>(1, config.wandb_log_frequency) == 0 ||
                      trainer->step() == total_steps)) {
      spdlog::info(
          "step {}/{} tokens {} loss {:.5g} mse {:.5g} l0 {:.3g} ev {:.3f} dead {} "
          "{:.0f} tok/s (waited {:.1f} s for data)",
          m.step, total_steps, m.tokens, m.overall_loss, m.mse_loss, m.l0, m.explained_variance,
          m.dead_features, tps, wait_seconds);
    }
    if (std::find(checkpoint_steps.begin(), checkpoint_steps.end(), trainer->step()) !=
        checkpoint_steps.end()) {
      SAE_RETURN_IF_ERROR(checkpoint());
    }
  }
  if (batch_log) batch_log->flush();
  const double loop_seconds = Seconds(loop_start);
  result.steps = trainer->step();
  result.tokens = trainer->tokens_seen();
  result.tokens_per_second =
      loop_seconds > 0
          ? static_cast<double>((trainer->step() - first_step) * config.train_batch_size) /
                loop_seconds
          : 0;
  result.wait_seconds = wait_seconds;
  if (!result.stopped) {
    SAE_ASSIGN_OR_RETURN(result.cursors, GatherCursors(readers, collective));
    if (rank == 0) {
      result.final_dir = options.output_dir + "/final";
      SAE_RETURN_IF_ERROR(training::ExportSae(*trainer, config, result.final_dir));
      spdlog::info("final SAE after {} steps ({} tokens): {}", result.steps, result.tokens,
                   result.final_dir);
      if (options.on_checkpoint) {
        SAE_RETURN_IF_ERROR(options.on_checkpoint(result.final_dir, trainer->step(), true));
      }
    }
  }
  queue->Close();
  for (auto& reader : readers) {
    reader->Stop();
    result.streams.push_back(reader->stats());
  }
  result.seconds = Seconds(start);
  if (rank == 0) {
    nlohmann::json summary = {
        {"run_id", run_id},
        {"world_size", options.world_size},
        {"steps", result.steps},
        {"tokens", result.tokens},
        {"stopped", result.stopped},
        {"seconds", result.seconds},
        {"tokens_per_second", result.tokens_per_second},
        {"wait_seconds", result.wait_seconds},
        {"collective_seconds", result.collective_seconds},
        {"first",
         {{"overall_loss", result.first.overall_loss}, {"mse_loss", result.first.mse_loss}}},
        {"last",
         {{"overall_loss", result.last.overall_loss},
          {"mse_loss", result.last.mse_loss},
          {"l0", result.last.l0},
          {"explained_variance", result.last.explained_variance},
          {"dead_features", result.last.dead_features}}},
        {"cursors", result.cursors},
        {"final_dir", result.final_dir},
        {"last_checkpoint", result.last_checkpoint}};
    SAE_RETURN_IF_ERROR(
        WriteFileAtomically(options.output_dir + "/summary.json", summary.dump(2) + "\n"));
  }
  return result;
}

}  // namespace sae::trainer
