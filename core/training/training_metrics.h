// The seed's training metrics as Prometheus series (docs/metrics.md: names start with sae_, base
// units, counters end in _total, durations are histograms; labels run_id and rank).
#ifndef SAE_CORE_TRAINING_TRAINING_METRICS_H_
#define SAE_CORE_TRAINING_TRAINING_METRICS_H_

#include <string>

#include "absl/status/statusor.h"
#include "core/metrics/registry.h"
#include "core/sae/sae_trainer.h"

namespace sae::training {

// One run's training series, labelled {run_id, rank, sae}: `sae` is the SAE's name in a run of
// many (core/config/sweep.h), "" for a run of one SAE, which the exposition leaves out.
// Thread-compatible: one thread records.
class TrainingMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<TrainingMetrics>> Create(metrics::Registry& registry,
                                                                 const std::string& run_id,
                                                                 int rank,
                                                                 const std::string& sae = "");

  // The run's size, once before the first step: latents and total steps.
  void RecordRunSize(int64_t d_sae, int64_t total_steps);
  // Records a step: every seed metric as a gauge, tokens and steps counters, the step duration.
  // `rank_tokens` is this rank's share of the global batch, so that summing the tokens series
  // over ranks gives the run's tokens (each rank counting the global batch would over-count by
  // the number of ranks).
  void RecordStep(const sparse::StepMetrics& step, double step_seconds, int64_t rank_tokens);
  // Time spent waiting for the next batch.
  void RecordWaitForData(double seconds);
  // Time of the gradient all-reduce.
  void RecordAllReduce(double seconds);

 private:
  TrainingMetrics() = default;
  metrics::Gauge *overall_loss_, *mse_loss_, *l1_loss_, *ghost_grad_loss_, *aux_loss_, *l0_,
      *explained_variance_, *explained_variance_std_, *dead_features_, *mean_passes_since_fired_,
      *mean_log10_feature_sparsity_, *learning_rate_, *l1_coefficient_, *tokens_per_second_,
      *l2_norm_, *l2_ratio_, *step_, *d_sae_, *total_steps_, *l0_loss_, *pre_act_loss_,
      *inner_mse_loss_, *topk_threshold_;
  metrics::Counter *tokens_, *steps_;
  metrics::Histogram *step_seconds_, *wait_seconds_, *allreduce_seconds_;
};

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_TRAINING_METRICS_H_
