// Evaluations during training (run.yaml's "Evaluations" keys, docs/evals.md): the held-out
// contexts, the cadence, and one evaluation of the trainer's current SAE inside the model.
#ifndef SAE_CORE_TRAINING_RUN_EVALUATION_H_
#define SAE_CORE_TRAINING_RUN_EVALUATION_H_

#include <ATen/ATen.h>

#include <memory>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/eval/eval_results.h"
#include "core/sae/sae_trainer.h"
#include "core/training/run_assets.h"

namespace sae::training {

// Evaluates one run's SAE on the same contexts every time. Not thread-safe.
class RunEvaluator {
 public:
  // Null (and OK) when the run has no evaluations: n_eval_batches 0, or a run from cached
  // activations (no model or dataset to evaluate with; logged). Reads the
  // n_eval_batches * eval_batch_size_prompts evaluation contexts once: the first ones of the
  // held-out documents of assets.dataset (LoadRunAssets holds them out), or of
  // eval_dataset_path.
  // `assets.model` must outlive the evaluator. Errors name the key to change: InvalidArgument
  // when the evaluation data holds fewer contexts than asked (it never wraps around into
  // contexts already evaluated), and the dataset's errors.
  static absl::StatusOr<std::unique_ptr<RunEvaluator>> Create(const config::RunConfig& config,
                                                              const RunAssets& assets);

  // Steps between evaluations: eval_every_n_wandb_logs * wandb_log_frequency (0: only at the
  // end).
  int64_t every_steps() const { return every_steps_; }

  // The SAE as `trainer` holds it now, evaluated on the run's contexts.
  absl::StatusOr<eval::EvalResults> Evaluate(const sparse::SaeTrainer& trainer) const;
  // An SAE of this run given as parameters (an activation server evaluating what a trainer
  // sent): `options` as the run's trainer has them.
  absl::StatusOr<eval::EvalResults> Evaluate(const sparse::SaeOptions& options,
                                             const sparse::SaeParameters& params) const;
  // The contexts each evaluation reads.
  int64_t contexts() const { return contexts_.size(0); }

 private:
  RunEvaluator() = default;

  const model::Gpt2Model* model_ = nullptr;
  std::string hook_name_;
  int hook_head_index_ = -1;
  at::Tensor contexts_;  // [n_eval_batches * eval_batch_size_prompts, context_size] int64
  int64_t batch_prompts_ = 0;
  int64_t every_steps_ = 0;
};

// One log line of an evaluation: "ce_loss_score 0.93 (CE 3.41 clean, 3.52 SAE, 7.90 ablated),
// kl_div_score 0.91, explained_variance 0.812, l0 31.2, dead 12".
std::string EvalSummaryLine(const eval::EvalResults& results);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_RUN_EVALUATION_H_
