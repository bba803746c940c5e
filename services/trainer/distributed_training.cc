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
#include "core/training/training_loop.h"
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

// One rank's batches: what the stream readers put in the prefetch queue.
class StreamBatches final : public training::TrainingBatches {
 public:
  // `max_sample_batches`: the initial sample never takes more batches than the run trains on.
  StreamBatches(PrefetchQueue& queue, const std::vector<std::unique_ptr<ActivationStreamReader>>& readers,
                sparse::Collective* collective, int64_t rank_batch, int64_t max_sample_batches,
                PrefetchMetrics* metrics, std::ofstream* batch_log)
      : queue_(queue),
        readers_(readers),
        collective_(collective),
        rank_batch_(rank_batch),
        max_sample_batches_(max_sample_batches),
        metrics_(metrics),
        batch_log_(batch_log) {}

  absl::StatusOr<at::Tensor> Next() override {
    SAE_ASSIGN_OR_RETURN(last_, Take());
    if (metrics_ != nullptr) metrics_->queue_batches->Set(queue_.depth());
    return last_.rows;
  }
  // Resampling takes batches beyond the run's steps: they are asked for as needed.
  absl::StatusOr<at::Tensor> NextForResampling() override {
    queue_.AddDemand(1);
    SAE_ASSIGN_OR_RETURN(StreamedBatch batch, Take());
    return batch.rows;
  }
  // The batches taken for the sample are kept for the first steps.
  absl::StatusOr<at::Tensor> InitialSample(int64_t rows) override {
    const int64_t wanted =
        std::min<int64_t>((rows + rank_batch_ - 1) / rank_batch_, max_sample_batches_);
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < wanted; ++i) {
      SAE_ASSIGN_OR_RETURN(StreamedBatch batch, Take());
      parts.push_back(batch.rows);
      held_.push_back(std::move(batch));
    }
    at::Tensor sample = at::cat(parts);
    return sample.narrow(0, 0, std::min<int64_t>(sample.size(0), rows));
  }
  // The furthest cursor of every server over the group (collective).
  absl::StatusOr<std::map<std::string, std::string>> CheckpointPosition() override {
    SAE_ASSIGN_OR_RETURN(cursors_, GatherCursors(readers_, collective_));
    return std::map<std::string, std::string>{{kStreamCursorsKey, nlohmann::json(cursors_).dump()}};
  }
  void OnStep(const sparse::StepMetrics& step) override {
    if (batch_log_ != nullptr) {
      *batch_log_ << BatchRecord(last_, collective_ != nullptr ? collective_->rank() : 0, step).dump()
                  << "\n";
    }
  }

  const std::vector<std::string>& cursors() const { return cursors_; }

 private:
  absl::StatusOr<StreamedBatch> Take() {
    if (!held_.empty()) {
      StreamedBatch batch = std::move(held_.front());
      held_.pop_front();
      return batch;
    }
    return queue_.Pop();
  }

  PrefetchQueue& queue_;
  const std::vector<std::unique_ptr<ActivationStreamReader>>& readers_;
  sparse::Collective* const collective_;
  const int64_t rank_batch_;
  const int64_t max_sample_batches_;
  PrefetchMetrics* const metrics_;
  std::ofstream* const batch_log_;
  std::deque<StreamedBatch> held_;  // taken for the initial sample, not trained on yet
  StreamedBatch last_;
  std::vector<std::string> cursors_;
};

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

// This rank's series: training, prefetch queue, and one set per server.
struct RankMetrics {
  std::unique_ptr<training::TrainingMetrics> training;
  std::unique_ptr<PrefetchMetrics> prefetch;
  std::vector<std::unique_ptr<ServerStreamMetrics>> streams;
};

absl::StatusOr<RankMetrics> CreateRankMetrics(metrics::Registry* registry,
                                              const std::string& run_id, int rank,
                                              int64_t servers) {
  RankMetrics m;
  m.streams.resize(servers);
  if (registry == nullptr) return m;
  SAE_ASSIGN_OR_RETURN(m.training, training::TrainingMetrics::Create(*registry, run_id, rank));
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
  return WriteFileAtomically(options.output_dir + "/summary.json", summary.dump(2) + "\n");
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

  // A pretrained SAE to start from (from_pretrained_path), checked against the config.
  std::optional<sparse::SaeParameters> pretrained;
  if (!options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(pretrained, training::PretrainedSaeFor(config, trainer_options));
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
                       CreateRankMetrics(options.metrics, run_id, rank, servers));

  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroupCollective> group, JoinGroup(options, run_id));
  sparse::Collective* collective = group.get();
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
  std::vector<std::unique_ptr<ActivationStreamReader>> readers;
  struct Shutdown {
    PrefetchQueue* queue;
    std::vector<std::unique_ptr<ActivationStreamReader>>* readers;
    ~Shutdown() {
      queue->Close();
      for (auto& reader : *readers) reader->Stop();
    }
  } shutdown{queue.get(), &readers};
  ActivationStreamOptions stream;  // what every server's reader shares
  stream.run_id = run_id;
  stream.config_digest = wire::RunConfigDigest(config);
  stream.rank = rank;
  stream.world_size = world_size;
  stream.session = NewSessionId();
  stream.generation = options.generation;
  stream.wire_dtype = config.wire_dtype;
  stream.batch_size = rank_batch;
  stream.d_in = trainer_options.sae.d_in;
  stream.lease = lease;
  stream.known_cursors = known_cursors;
  stream.call_timeout = options.stream.call_timeout;
  stream.server_deadline = options.stream.server_deadline;
  stream.security = options.stream.security;
  for (int64_t s = 0; s < servers; ++s) {
    stream.address = options.servers[s];
    stream.server_index = static_cast<int>(s);
    SAE_ASSIGN_OR_RETURN(auto reader,
                         ActivationStreamReader::Start(stream, queue.get(), series.streams[s].get()));
    readers.push_back(std::move(reader));
  }
  if (aborted()) return abandoned;
  SAE_ASSIGN_OR_RETURN(const int64_t tokens_trained_before,
                       AllReduceMax(options.tokens_trained_before, collective));
  if (options.on_group_ready) options.on_group_ready(tokens_trained_before);
  queue->AddDemand(total_steps - trainer->step());

  SAE_ASSIGN_OR_RETURN(std::unique_ptr<std::ofstream> batch_log, OpenBatchLog(options.batch_log));
  StreamBatches batches(*queue, readers, collective, rank_batch, std::max<int64_t>(total_steps, 1),
                        series.prefetch.get(), batch_log.get());
  training::TrainingLoopOptions loop;
  loop.output_dir = options.output_dir;
  loop.initialize_decoder_bias = !options.resume_dir && !config.from_pretrained_path;
  loop.stop = options.stop;
  loop.abort = options.abort;
  loop.series = series.training.get();
  loop.log_progress = true;
  loop.on_step = options.on_step;
  loop.on_checkpoint = options.on_checkpoint;
  absl::StatusOr<training::TrainingLoopResult> trained =
      training::RunTrainingLoop(config, *trainer, collective, batches, loop);
  if (!trained.ok()) return aborted() ? abandoned : trained.status();
  if (batch_log) batch_log->flush();

  DistributedTrainingResult result = ResultOf(*trained);
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
