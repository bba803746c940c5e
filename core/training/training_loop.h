// The SAE training loop, once, for every way of running it: `saectl train` (one process, GPT-2
// or an activation cache as the source) and the trainer service (one rank of a data-parallel
// group fed by activation servers). Callers set up the trainer, its group and a TrainingBatches;
// the loop owns the schedule:
//
//   b_dec from an initial sample (rank 0's first half mixing buffer, unless resumed or
//   pretrained; with normalize_activations expected_average_only_in, after the activation
//   scale is estimated over n_batches_for_norm_estimate batches of every rank) -> steps until TotalTrainingSteps(config), each: [group: agree on stop/no-data]
//   -> SaeTrainer::Step -> metrics, progress, evaluations -> checkpoints at
//   i * total / n_checkpoints (i = 1..n_checkpoints) under the checkpoint root -> the final SAE
//   in SAELens format (rank 0, output_dir/final).
//
// A stop request (Ctrl-C, SIGTERM, the controller's StopRun) checkpoints at the next step
// boundary and ends the loop on every rank at the same step.
//
// Many SAEs from one stream (run.yaml's sweep: and hook_points:, core/config/sweep.h): the loop
// trains a set of SAEs, each with its own trainer, on the same batches. A batch holds the
// columns of every hook of the run side by side; each SAE trains on its hook's columns. Per
// step every SAE steps in turn on the same batch; checkpoints hold every SAE at the same step
// (CHECKPOINT_ROOT/step_N/saes/<name>/), so that a resume continues all of them from one data
// position.
#ifndef SAE_CORE_TRAINING_TRAINING_LOOP_H_
#define SAE_CORE_TRAINING_TRAINING_LOOP_H_

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/sae/sae_trainer.h"
#include "core/training/training_metrics.h"

namespace sae::training {

// Where one rank's batches come from. Single-thread use (the loop's thread).
class TrainingBatches {
 public:
  virtual ~TrainingBatches() = default;
  // This rank's batch for the next step: [rows, d_in] float32 (with several hooks, d_in is the
  // sum of their widths, each hook's columns in the run's order).
  virtual absl::StatusOr<at::Tensor> Next() = 0;
  // A batch for Anthropic resampling, beyond the run's steps (rank 0 only).
  virtual absl::StatusOr<at::Tensor> NextForResampling() { return Next(); }
  // Rank 0: the first `rows` activations of the stream, for b_dec's initialisation. They are
  // still served by Next afterwards (the seed trains on its first buffer too).
  virtual absl::StatusOr<at::Tensor> InitialSample(int64_t rows) = 0;
  // What a checkpoint records to continue the data where this step left it (keys are
  // checkpoint extras). Called on every rank at the same step: it may be collective.
  virtual absl::StatusOr<std::map<std::string, std::string>> CheckpointPosition() = 0;
  // Told the outcome of the step trained on the last batch Next returned.
  virtual void OnStep(const sparse::StepMetrics& step) {}
};

// The checkpoint steps of a run: i * total_steps / n_checkpoints for i = 1..n_checkpoints.
std::vector<int64_t> CheckpointSteps(const config::RunConfig& config);
// Where checkpoints go: checkpoint_path, under `output_dir` when relative.
std::string CheckpointRoot(const config::RunConfig& config, const std::string& output_dir);
// Rows of the b_dec initialisation sample: the seed's first storage buffer, half the mixing
// buffer (n_batches_in_buffer / 2 * store_batch_size contexts).
int64_t InitialSampleRows(const config::RunConfig& config);

// One SAE of the set the loop trains. The pointers are not owned and outlive the loop.
struct LoopSae {
  // "" for a run of one SAE; else its name in the run (sweep.h), which prefixes its log lines
  // and names its checkpoint folder.
  std::string name;
  // The SAE's own config (a child of the run's sweep, or the run's config).
  const config::RunConfig* config = nullptr;
  sparse::SaeTrainer* trainer = nullptr;
  // Its activations: columns [first_column, first_column + d_in) of each batch.
  int64_t first_column = 0;
  // The final SAE goes to output_dir/final (rank 0).
  std::string output_dir;
  // As TrainingLoopOptions's fields of the same names, for this SAE.
  TrainingMetrics* series = nullptr;
  std::function<void(const sparse::StepMetrics& step, double tokens_per_second,
                     int64_t total_steps)>
      on_step;
  std::function<absl::Status(const std::string& dir, int64_t step, bool final)> on_checkpoint;
  std::function<absl::Status(const sparse::SaeTrainer& trainer, int64_t step, bool final)> evaluate;
};

struct TrainingLoopOptions {
  // Rank 0 writes checkpoints (under CheckpointRoot) and the final SAE (final/) here.
  std::string output_dir;
  // Initialise b_dec from InitialSample before the first step (false when resumed or started
  // from a pretrained SAE).
  bool initialize_decoder_bias = true;
  // Set to checkpoint and stop at the next step boundary. Any rank may set it; all ranks stop
  // at the same step.
  const std::atomic<bool>* stop = nullptr;
  // Set to leave now, without a checkpoint: the loop returns Cancelled at the next boundary.
  const std::atomic<bool>* abort = nullptr;
  // Optional: the training series (wait, step, all-reduce).
  TrainingMetrics* series = nullptr;
  // Rank 0 logs a progress line every wandb_log_frequency steps and at the end.
  bool log_progress = false;
  // Optional, every rank: after every step, with the global tokens/s of the loop so far.
  std::function<void(const sparse::StepMetrics& step, double tokens_per_second,
                     int64_t total_steps)>
      on_step;
  // Optional, rank 0: after each checkpoint (`final` false) and the final SAE (`final` true)
  // is written; an error ends the loop.
  std::function<absl::Status(const std::string& dir, int64_t step, bool final)> on_checkpoint;
  // Optional, rank 0: evaluations of the SAE as it is after `step`, every `evaluate_every`
  // steps (0: never) and after the last step (`final`: once the final SAE is written in
  // output_dir/final, before on_checkpoint sees it). An error is logged, never fatal: a failed
  // evaluation does not stop training.
  int64_t evaluate_every = 0;
  std::function<absl::Status(const sparse::SaeTrainer& trainer, int64_t step, bool final)>
      evaluate;
};

struct TrainingLoopResult {
  int64_t steps = 0;
  int64_t tokens = 0;  // global
  bool stopped = false;
  std::string final_dir;          // rank 0, when not stopped
  std::string last_checkpoint;    // rank 0
  double tokens_per_second = 0;   // global tokens over the loop's time
  double seconds = 0;             // the loop's time
  double wait_seconds = 0;        // this rank's time waiting for batches
  double collective_seconds = 0;  // this rank's time in collectives after the steps
  sparse::StepMetrics first;      // the first step this loop ran
  sparse::StepMetrics last;
  std::map<std::string, std::string> last_position;  // the last CheckpointPosition
  // Per SAE of the set, in its order (the fields above are the first SAE's).
  struct Sae {
    std::string final_dir;  // rank 0, when not stopped
    std::string last_checkpoint;
    sparse::StepMetrics first;
    sparse::StepMetrics last;
  };
  std::vector<Sae> saes;
};

// Trains `trainer` (created on its group, possibly restored from a checkpoint) on `batches` to
// TotalTrainingSteps(config) or a stop request. Errors: those of the source, the trainer and
// the checkpoint writer; Unavailable when another rank had no batch; Cancelled after `abort`.
absl::StatusOr<TrainingLoopResult> RunTrainingLoop(const config::RunConfig& config,
                                                   sparse::SaeTrainer& trainer,
                                                   sparse::Collective* collective,
                                                   TrainingBatches& batches,
                                                   const TrainingLoopOptions& options);

// The same loop over a set of SAEs sharing `batches` (one SAE named "" is the call above).
// `config` is the run's (its shared keys: steps, checkpoints, logging); every trainer must be
// at the same step. options.output_dir holds the checkpoint root; options.series, on_step,
// on_checkpoint and evaluate are not used: each LoopSae carries its own. Anthropic resampling
// batches are drawn from `batches` once per step and shared by the SAEs that resample then.
absl::StatusOr<TrainingLoopResult> RunTrainingLoop(const config::RunConfig& config,
                                                   const std::vector<LoopSae>& saes,
                                                   sparse::Collective* collective,
                                                   TrainingBatches& batches,
                                                   const TrainingLoopOptions& options);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_TRAINING_LOOP_H_
