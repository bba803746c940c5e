// What a trainer rank trains on: the batches its stream readers put in the prefetch queue, as
// core/training's loop takes them (TrainingBatches), and where a checkpoint records the
// streams (every server's furthest cursor over the group).
#ifndef SAE_SERVICES_TRAINER_STREAM_BATCHES_H_
#define SAE_SERVICES_TRAINER_STREAM_BATCHES_H_

#include <ATen/ATen.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/sae/collective.h"
#include "core/training/training_loop.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"
#include "services/trainer/activation_stream.h"
#include "services/trainer/prefetch_queue.h"
#include "services/trainer/stream_metrics.h"

namespace sae::trainer {

// The checkpoint extra that records the furthest cursor seen from each server.
inline constexpr char kStreamCursorsKey[] = "stream_cursors";

// Every rank's furthest cursor per server, gathered with one all-reduce (each rank fills only
// its own slot), reduced to the furthest per server (hex, "" for none). Collective: every rank
// calls it at the same step.
absl::StatusOr<std::vector<std::string>> GatherCursors(
    const std::vector<std::unique_ptr<ActivationStreamReader>>& readers,
    sparse::Collective* group);

// The cursors a checkpoint recorded (kStreamCursorsKey), as ShardCursor bytes.
absl::StatusOr<std::vector<std::string>> CheckpointCursors(
    const std::map<std::string, std::string>& extra, const std::string& dir);

// One JSON line per trained batch (DistributedTrainingOptions::batch_log).
nlohmann::json BatchRecord(const StreamedBatch& batch, int rank, const sparse::StepMetrics& m);

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

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_STREAM_BATCHES_H_
