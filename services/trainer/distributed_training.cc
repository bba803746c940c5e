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
#include "core/config/sweep.h"
#include "core/io/saelens.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/training/run_evaluation.h"
#include "core/training/run_saes.h"
#include "core/training/training_loop.h"
#include "core/training/training_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/wire/cursor_text.h"
#include "core/wire/run_digest.h"
#include "nlohmann/json.hpp"
#include "services/trainer/prefetch_queue.h"
#include "services/trainer/process_group.h"
#include "services/trainer/rank_saes.h"
#include "services/trainer/remote_evaluation.h"
#include "services/trainer/stream_batches.h"
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
  const ProcessGroupOptions& g = o.group;
  if (g.world_size < 1 || g.rank < 0 || g.rank >= g.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("--rank ", g.rank, " of --world-size ", g.world_size, " does not exist"));
  }
  if (c.source.Given("trainers") && c.trainers != g.world_size) {
    return config::ConfigKeyError(c, "trainers",
                                  absl::StrCat("is ", c.trainers, " but --world-size is ",
                                               g.world_size, "; they must agree"));
  }
  if (c.train_batch_size % g.world_size != 0) {
    return config::ConfigKeyError(
        c, "train_batch_size",
        absl::StrCat(c.train_batch_size, " does not split evenly over ", g.world_size,
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
  if (g.world_size > 1 && g.rendezvous.empty()) {
    return absl::InvalidArgumentError("--rendezvous HOST:PORT is needed for a world of > 1");
  }
  if (o.output_dir.empty() && g.rank == 0) {
    return absl::InvalidArgumentError("--output names no folder");
  }
  return absl::OkStatus();
}

// Closes the prefetch queue as soon as `abort` turns true (polled every 50 ms), which ends the
// readers and every wait for a batch.
class AbortWatch {
 public:
  AbortWatch(const std::atomic<bool>* abort, PrefetchQueue* queue) {
    if (abort == nullptr) return;
    thread_ = std::thread([this, abort, queue] {
      while (!done_.load()) {
        if (abort->load()) {
          queue->Close();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~AbortWatch() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  AbortWatch(const AbortWatch&) = delete;
  AbortWatch& operator=(const AbortWatch&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Batches received ahead of the step, at most.
int PrefetchBatches(const StreamSettings& stream, int64_t servers) {
  return stream.prefetch_batches > 0 ? stream.prefetch_batches
                                     : static_cast<int>(std::max<int64_t>(4, 2 * servers));
}

// The share of the prefetch one call may lease, so that every server has calls in flight.
int LeaseBatches(const StreamSettings& stream, int prefetch, int64_t servers) {
  return std::max(1, std::min(stream.max_batches_per_call, prefetch / static_cast<int>(servers)));
}

DistributedTrainingResult ResultOf(const training::TrainingLoopResult& trained) {
  DistributedTrainingResult result;
  result.steps = trained.steps;
  result.tokens = trained.tokens;
  result.stopped = trained.stopped;
  result.final_dir = trained.final_dir;
  result.last_checkpoint = trained.last_checkpoint;
  result.tokens_per_second = trained.tokens_per_second;
  result.wait_seconds = trained.wait_seconds;
  result.collective_seconds = trained.collective_seconds;
  result.first = trained.first;
  result.last = trained.last;
  return result;
}

// DistributedTrainingOptions::batch_log, appended to; null when `path` is empty.
absl::StatusOr<std::unique_ptr<std::ofstream>> OpenBatchLog(const std::string& path) {
  if (path.empty()) return nullptr;
  auto log = std::make_unique<std::ofstream>(path, std::ios::app);
  if (!*log) return absl::InvalidArgumentError(absl::StrCat("cannot write --batch-log ", path));
  return log;
}

// This rank's series: training (a run of one SAE; a run of many has one set per SAE, labelled
// with its name), prefetch queue, and one set per server.
struct RankMetrics {
  std::unique_ptr<training::TrainingMetrics> training;
  std::unique_ptr<PrefetchMetrics> prefetch;
  std::vector<std::unique_ptr<ServerStreamMetrics>> streams;
};

absl::StatusOr<RankMetrics> CreateRankMetrics(metrics::Registry* registry,
                                              const std::string& run_id, int rank,
                                              int64_t servers, bool many) {
  RankMetrics m;
  m.streams.resize(servers);
  if (registry == nullptr) return m;
  if (!many) {
    SAE_ASSIGN_OR_RETURN(m.training, training::TrainingMetrics::Create(*registry, run_id, rank));
  }
  SAE_ASSIGN_OR_RETURN(m.prefetch, PrefetchMetrics::Create(*registry, run_id, rank));
  for (int64_t s = 0; s < servers; ++s) {
    SAE_ASSIGN_OR_RETURN(m.streams[s], ServerStreamMetrics::Create(*registry, run_id, rank,
                                                                    static_cast<int>(s)));
  }
  return m;
}

// The c10d group of a world of more than one (null for one rank).
absl::StatusOr<std::unique_ptr<ProcessGroupCollective>> JoinGroup(
    const DistributedTrainingOptions& options, const std::string& run_id) {
  if (options.group.world_size <= 1) return nullptr;
  ProcessGroupOptions group_options = options.group;
  group_options.store_prefix = absl::StrCat(run_id, "/g", options.generation, "/");
  group_options.abort = options.abort;
  if (!group_options.waiting) {
    group_options.waiting = [rank = group_options.rank](const std::string& what) {
      spdlog::info("rank {}: rendezvous waiting for {}", rank, what);
    };
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroupCollective> group,
                       ProcessGroupCollective::Create(group_options));
  spdlog::info("rank {} of {} joined the {} group at {}", group_options.rank,
               group_options.world_size, BackendName(group->backend()), group_options.rendezvous);
  return group;
}

// rank 0's summary.json of the run (tests and benchmarks read it).
absl::Status WriteSummary(const DistributedTrainingOptions& options, const std::string& run_id,
                          const DistributedTrainingResult& result) {
  nlohmann::json summary = {
      {"run_id", run_id},
      {"world_size", options.group.world_size},
      {"steps", result.steps},
      {"tokens", result.tokens},
      {"stopped", result.stopped},
      {"seconds", result.seconds},
      {"tokens_per_second", result.tokens_per_second},
      {"wait_seconds", result.wait_seconds},
      {"collective_seconds", result.collective_seconds},
      {"first", {{"overall_loss", result.first.overall_loss}, {"mse_loss", result.first.mse_loss}}},
      {"last",
       {{"overall_loss", result.last.overall_loss},
        {"mse_loss", result.last.mse_loss},
        {"l0", result.last.l0},
        {"explained_variance", result.last.explained_variance},
        {"dead_features", result.last.dead_features}}},
      {"cursors", result.cursors},
      {"final_dir", result.final_dir},
      {"last_checkpoint", result.last_checkpoint}};
  if (result.saes.size() > 1 || (!result.saes.empty() && !result.saes.front().name.empty())) {
    nlohmann::json saes = nlohmann::json::array();
    for (const DistributedTrainingResult::Sae& sae : result.saes) {
      saes.push_back({{"name", sae.name},
                      {"final_dir", sae.final_dir},
                      {"step", sae.last.step},
                      {"l0", sae.last.l0},
                      {"mse_loss", sae.last.mse_loss}});
    }
    summary["saes"] = std::move(saes);
  }
  return WriteFileAtomically(options.output_dir + "/summary.json", summary.dump(2) + "\n");
}

// What every server's reader shares.
ActivationStreamOptions StreamOptionsFor(const DistributedTrainingOptions& options,
                                         const std::string& run_id, int64_t rank_batch,
                                         int64_t d_in, int lease,
                                         const std::vector<std::string>& known_cursors) {
  ActivationStreamOptions stream;
  stream.run_id = run_id;
  stream.config_digest = wire::RunConfigDigest(options.config);
  stream.rank = options.group.rank;
  stream.world_size = options.group.world_size;
  stream.session = NewSessionId();
  stream.generation = options.generation;
  stream.wire_dtype = options.config.wire_dtype;
  stream.batch_size = rank_batch;
  stream.d_in = d_in;
  stream.lease = lease;
  stream.known_cursors = known_cursors;
  stream.call_timeout = options.stream.call_timeout;
  stream.server_deadline = options.stream.server_deadline;
  stream.security = options.stream.security;
  return stream;
}

// One reader per server, into `readers` (which the caller stops, also after an error).
absl::Status StartReaders(ActivationStreamOptions stream, const std::vector<std::string>& servers,
                          PrefetchQueue* queue, const RankMetrics& series,
                          std::vector<std::unique_ptr<ActivationStreamReader>>& readers) {
  for (size_t s = 0; s < servers.size(); ++s) {
    stream.address = servers[s];
    stream.server_index = static_cast<int>(s);
    SAE_ASSIGN_OR_RETURN(auto reader,
                         ActivationStreamReader::Start(stream, queue, series.streams[s].get()));
    readers.push_back(std::move(reader));
  }
  return absl::OkStatus();
}

// Rank 0 of a run with evaluations: the loop's evaluations go to the activation servers
// (remote_evaluation.h); the final one is waited for and saved as final/eval_results.json.
std::unique_ptr<RemoteEvaluator> ConnectEvaluations(const DistributedTrainingOptions& options,
                                                    const std::string& run_id,
                                                    training::TrainingLoopOptions& loop) {
  const config::RunConfig& config = options.config;
  if (options.group.rank != 0 || config.n_eval_batches <= 0) return nullptr;
  RemoteEvaluationOptions remote;
  remote.servers = options.servers;
  remote.security = options.stream.security;
  remote.run_id = run_id;
  remote.config_digest = wire::RunConfigDigest(config);
  RemoteEvaluator::Report report = options.on_eval;
  if (!report) {
    report = [](const RemoteEvaluation& outcome) {
      if (outcome.results.ok()) {
        spdlog::info("evaluation at step {} ({}, {:.1f} s): {}", outcome.step, outcome.server,
                     outcome.seconds, training::EvalSummaryLine(*outcome.results));
      } else {
        spdlog::warn("{}; training goes on", std::string(outcome.results.status().message()));
      }
    };
  }
  auto evaluator = std::make_unique<RemoteEvaluator>(std::move(remote), std::move(report));
  loop.evaluate_every =
      config.eval_every_n_wandb_logs * std::max<int64_t>(1, config.wandb_log_frequency);
  return evaluator;
}

// The evaluation of one SAE through `evaluator` (ConnectEvaluations): periodic ones start and
// return; the final one is waited for and saved as final/eval_results.json in `output_dir`. In
// a run of `count` SAEs the periodic evaluations take turns (the evaluator runs one at a time):
// the k-th evaluation step (every `every` steps) evaluates the SAE of index k mod count.
std::function<absl::Status(const sparse::SaeTrainer&, int64_t, bool)> EvaluateRemotely(
    RemoteEvaluator* evaluator, const std::string& output_dir, int64_t batch,
    const std::string& sae, size_t index, size_t count, int64_t every) {
  return [evaluator, output_dir, batch, sae, index, count, every](
             const sparse::SaeTrainer& trainer, int64_t step, bool final) -> absl::Status {
    if (!final) {
      if (count > 1 && every > 0 &&
          static_cast<size_t>(step / every - 1) % count != index) {
        return absl::OkStatus();  // another SAE's turn
      }
      evaluator->Start(step, step * batch, trainer.sae().params(), sae);
      return absl::OkStatus();
    }
    RemoteEvaluation outcome =
        evaluator->EvaluateNow(step, step * batch, trainer.sae().params(), true, sae);
    if (!outcome.results.ok()) return outcome.results.status();
    return WriteFileAtomically(output_dir + "/final/eval_results.json",
                               eval::ToJson(*outcome.results).dump(2) + "\n");
  };
}

// The training loop's view of each SAE: trainer, columns, series and callbacks. A run of many
// uploads one checkpoint per step holding every SAE, after the last SAE's is written.
std::vector<training::LoopSae> LoopSaesFor(const DistributedTrainingOptions& options,
                                           std::vector<RankSae>& saes, bool many,
                                           training::TrainingMetrics* run_series,
                                           RemoteEvaluator* evaluator,
                                           const training::TrainingLoopOptions& loop) {
  const config::RunConfig& config = options.config;
  const int64_t batch = config.train_batch_size;
  std::vector<training::LoopSae> loop_saes;
  for (size_t i = 0; i < saes.size(); ++i) {
    RankSae& sae = saes[i];
    training::LoopSae entry;
    entry.name = sae.run.name;
    entry.config = &sae.run.config;
    entry.trainer = sae.trainer.get();
    entry.first_column = sae.run.first_column;
    entry.output_dir = sae.output_dir;
    entry.series = many ? sae.series.get() : run_series;
    if (many) {
      if (options.on_sae_step) {
        entry.on_step = [&options, i, name = sae.run.name](const sparse::StepMetrics& m,
                                                          double tps, int64_t total) {
          options.on_sae_step(i, name, m, tps, total);
        };
      }
      if (options.on_checkpoint && i + 1 == saes.size()) {
        // One upload per step with every SAE, after the last SAE's checkpoint is written.
        entry.on_checkpoint = [&options, &saes](const std::string& dir, int64_t step,
                                                bool final) -> absl::Status {
          std::string folder;
          if (final) {
            SAE_ASSIGN_OR_RETURN(folder, GatherFinalSaes(options.output_dir, saes));
          } else {
            folder = training::CheckpointRoot(options.config, options.output_dir) + "/" +
                     training::CheckpointName(step);
          }
          return options.on_checkpoint(folder, step, final);
        };
      }
    } else {
      entry.on_step = options.on_step;
      entry.on_checkpoint = options.on_checkpoint;
    }
    if (evaluator != nullptr) {
      entry.evaluate = EvaluateRemotely(evaluator, sae.output_dir, batch, sae.run.name, i,
                                        saes.size(), loop.evaluate_every);
    }
    loop_saes.push_back(std::move(entry));
  }
  return loop_saes;
}

}  // namespace

absl::StatusOr<DistributedTrainingResult> RunDistributedTraining(
    DistributedTrainingOptions options) {
  const auto start = Clock::now();
  config::RunConfig& config = options.config;
  SAE_RETURN_IF_ERROR(CheckGroup(options));
  // A run of many SAEs (core/config/sweep.h): one trainer per SAE, all fed by the same batches,
  // whose rows hold every hook of the run side by side (training/run_saes.h).
  const bool many = config::TrainsManySaes(config);
  training::RunSaes run_saes;
  if (many) {
    SAE_ASSIGN_OR_RETURN(run_saes, training::ResolveRunSaes(config));
  }
  SAE_RETURN_IF_ERROR(training::ResolveRunConfig(config));
  if (!many) {
    run_saes.saes.push_back({"", config, 0});
    run_saes.width = config.d_in.value_or(0);
  }
  const std::string run_id = options.run_id.empty() ? wire::DefaultRunId(config) : options.run_id;
  const int rank = options.group.rank;
  const int world_size = options.group.world_size;
  const int64_t total_steps = config::TotalTrainingSteps(config);
  const int64_t rank_batch = config.train_batch_size / world_size;
  const int64_t servers = static_cast<int64_t>(options.servers.size());
  if (rank == 0) {
    SAE_RETURN_IF_ERROR(MakeDirectories(options.output_dir));
    SAE_RETURN_IF_ERROR(
        WriteFileAtomically(options.output_dir + "/run.yaml", config::ToYaml(config)));
  }

  SAE_ASSIGN_OR_RETURN(std::vector<RankSae> saes,
                       MakeRankSaes(std::move(run_saes.saes), many, rank, options.output_dir));
  const int64_t d_in = many ? run_saes.width : saes.front().options.sae.d_in;
  // A pretrained SAE to start from (from_pretrained_path), checked against the config.
  std::vector<std::optional<sparse::SaeParameters>> pretrained;
  if (!options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(pretrained, PretrainedSaes(saes));
  }
  const int prefetch = PrefetchBatches(options.stream, servers);
  const int lease = LeaseBatches(options.stream, prefetch, servers);
  // The demand is set once the starting step is known; the readers wait until then.
  auto queue = std::make_unique<PrefetchQueue>(prefetch, 0);
  AbortWatch abort_watch(options.abort, queue.get());
  auto aborted = [&] { return options.abort != nullptr && options.abort->load(); };
  const absl::Status abandoned =
      absl::CancelledError(absl::StrCat("run ", run_id, " generation ", options.generation,
                                        ": abandoned (the controller moved the group on)"));
  SAE_ASSIGN_OR_RETURN(RankMetrics series,
                       CreateRankMetrics(options.metrics, run_id, rank, servers, many));
  if (many && options.metrics != nullptr) {
    for (RankSae& sae : saes) {
      SAE_ASSIGN_OR_RETURN(sae.series, training::TrainingMetrics::Create(
                                           *options.metrics, run_id, rank, sae.run.name));
    }
  }

  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroupCollective> group, JoinGroup(options, run_id));
  sparse::Collective* collective = group.get();
  CreateSaeTrainers(saes, pretrained, collective);
  std::vector<std::string> known_cursors;
  if (options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(known_cursors, ResumeSaes(*options.resume_dir, many, saes));
  }
  sparse::SaeTrainer& lead = *saes.front().trainer;

  // The readers, one per server.
  std::vector<std::unique_ptr<ActivationStreamReader>> readers;
  struct Shutdown {
    PrefetchQueue* queue;
    std::vector<std::unique_ptr<ActivationStreamReader>>* readers;
    ~Shutdown() {
      queue->Close();
      for (auto& reader : *readers) reader->Stop();
    }
  } shutdown{queue.get(), &readers};
  SAE_RETURN_IF_ERROR(StartReaders(
      StreamOptionsFor(options, run_id, rank_batch, d_in, lease, known_cursors), options.servers,
      queue.get(), series, readers));
  if (aborted()) return abandoned;
  SAE_ASSIGN_OR_RETURN(const int64_t tokens_trained_before,
                       AllReduceMax(options.tokens_trained_before, collective));
  if (options.on_group_ready) options.on_group_ready(tokens_trained_before);
  queue->AddDemand(total_steps - lead.step());

  SAE_ASSIGN_OR_RETURN(std::unique_ptr<std::ofstream> batch_log, OpenBatchLog(options.batch_log));
  StreamBatches batches(*queue, readers, collective, rank_batch, std::max<int64_t>(total_steps, 1),
                        series.prefetch.get(), batch_log.get());
  training::TrainingLoopOptions loop;
  loop.output_dir = options.output_dir;
  loop.initialize_decoder_bias = !options.resume_dir && !config.from_pretrained_path;
  loop.stop = options.stop;
  loop.abort = options.abort;
  loop.log_progress = true;
  std::unique_ptr<RemoteEvaluator> evaluator = ConnectEvaluations(options, run_id, loop);
  std::vector<training::LoopSae> loop_saes =
      LoopSaesFor(options, saes, many, series.training.get(), evaluator.get(), loop);
  absl::StatusOr<training::TrainingLoopResult> trained = training::RunTrainingLoop(
      many ? config : saes.front().run.config, loop_saes, collective, batches, loop);
  if (!trained.ok()) return aborted() ? abandoned : trained.status();
  if (batch_log) batch_log->flush();

  DistributedTrainingResult result = ResultOf(*trained);
  for (size_t i = 0; i < saes.size(); ++i) {
    result.saes.push_back({saes[i].run.name, trained->saes[i].final_dir, trained->saes[i].last});
  }
  if (!result.stopped) {
    SAE_RETURN_IF_ERROR(batches.CheckpointPosition().status());
  }
  result.cursors = batches.cursors();
  queue->Close();
  for (auto& reader : readers) {
    reader->Stop();
    result.streams.push_back(reader->stats());
  }
  result.seconds = Seconds(start);
  if (rank == 0) SAE_RETURN_IF_ERROR(WriteSummary(options, run_id, result));
  return result;
}

}  // namespace sae::trainer
