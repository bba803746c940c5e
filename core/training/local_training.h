// Training in one process, no networking: `saectl train`, the laptop and debugging path, and
// the baseline the distributed path is measured against.
#ifndef SAE_CORE_TRAINING_LOCAL_TRAINING_H_
#define SAE_CORE_TRAINING_LOCAL_TRAINING_H_

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/eval/eval_results.h"
#include "core/metrics/registry.h"
#include "core/sae/sae_trainer.h"

namespace sae::training {

struct LocalTrainingOptions {
  // Where run.yaml, checkpoints (under checkpoint_path) and the final SAE (final/) go; for a
  // run of many SAEs each SAE's final/ is under saes/<name>/ (see RunLocalTraining).
  std::string output_dir;
  // A checkpoint folder to continue from (for many SAEs, the step's folder holding saes/).
  std::optional<std::string> resume_dir;
  // Called after every step of every SAE (progress display, logs); `sae` is its name ("" for a
  // run of one SAE).
  std::function<void(const std::string& sae, const sparse::StepMetrics& step,
                     double tokens_per_second, int64_t total_steps)>
      on_step;
  // Called after each evaluation (run.yaml's Evaluations keys), `final` after the last step.
  std::function<void(const std::string& sae, const eval::EvalResults& results, int64_t step,
                     bool final)>
      on_eval;
  // Set from a signal handler: the loop writes a checkpoint and returns at the next step.
  const std::atomic<bool>* interrupt = nullptr;
  // Optional Prometheus registry for the training series (run_id = output folder name).
  metrics::Registry* metrics = nullptr;
  std::string run_id = "local";
};

struct LocalTrainingResult {
  int64_t steps = 0;
  int64_t tokens = 0;
  bool interrupted = false;
  std::string final_dir;         // the SAELens export (empty when interrupted)
  std::string last_checkpoint;   // the last checkpoint written, if any
  double tokens_per_second = 0;  // over the whole run (model forwards included)
  double seconds = 0;
  sparse::StepMetrics last;
  // The evaluation after the last step (also in final/eval_results.json); unset without
  // evaluations, when interrupted, or when it failed (the log says why).
  std::optional<eval::EvalResults> final_eval;
  // Every SAE of the run in its order (the fields above are the first one's).
  struct Sae {
    std::string name;  // "" for a run of one SAE
    std::string final_dir;
    std::string last_checkpoint;
    sparse::StepMetrics last;
    std::optional<eval::EvalResults> final_eval;
  };
  std::vector<Sae> saes;
};

// Trains `config` (resolved here) to total_training_tokens. Checkpoints: n_checkpoints evenly
// spaced ones, at steps i * total / n_checkpoints for i = 1..n_checkpoints (the last at the
// end), each under output_dir/checkpoint_path/step_XXXXXXXX; the final SAE in SAELens format
// in output_dir/final, with final/eval_results.json when the run evaluates. An interrupt writes
// a checkpoint first.
//
// A run of many SAEs (sweep:, hook_points:; core/config/sweep.h) trains all of them from one
// stream: one GPT-2 forward per store batch captures every hook, one mixing buffer moves the
// rows of all hooks together, and every SAE steps on each batch. Layout:
//   output_dir/run.yaml                          the run as written (with sweep:/hook_points:)
//   output_dir/saes/<name>/run.yaml              the SAE's own config, resolved
//   output_dir/saes/<name>/final/                its SAELens export (+ eval_results.json)
//   <checkpoint root>/step_N/run.yaml            the run
//   <checkpoint root>/step_N/saes/<name>/        each SAE's checkpoint at step N
// resume_dir is such a step_N folder: every SAE continues from its checkpoint there.
absl::StatusOr<LocalTrainingResult> RunLocalTraining(config::RunConfig config,
                                                     const LocalTrainingOptions& options);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_LOCAL_TRAINING_H_
