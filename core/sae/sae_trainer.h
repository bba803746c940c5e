// One SAE training loop's state and its step, in the seed's order:
//   normalise W_dec rows; (window boundary: sparsity metrics, optional resampling, reset);
//   learning rate and L1 coefficient for this step; dead mask; forward; backward;
//   data-parallel reduction; dead-feature counters and feature frequencies; remove the
//   gradient parallel to decoder rows; Adam.
// With a Collective of N ranks, each rank passes its share of the global batch and one step
// equals a single-process step on the concatenated batch.
#ifndef SAE_CORE_SAE_SAE_TRAINER_H_
#define SAE_CORE_SAE_SAE_TRAINER_H_

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/sae/adam.h"
#include "core/sae/collective.h"
#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {

// Logged at the end of each feature-sampling window (the seed's names in comments).
struct SparsityMetrics {
  double mean_log10_feature_sparsity = 0;  // metrics/mean_log10_feature_sparsity
  int64_t below_1e5 = 0;                   // sparsity/below_1e-5
  int64_t below_1e6 = 0;                   // sparsity/below_1e-6
  int64_t dead_by_threshold = 0;           // features with frequency < dead_feature_threshold
  int64_t resampled = 0;                   // features resampled (feature_sampling_method anthropic)
  // The window's feature densities as the seed's plots/feature_density_line_chart histogram
  // shows them: counts of log10(density + 1e-10) in kDensityBins bins of width 0.5 from -10
  // to 0 (features that never fired fall in the first bin).
  std::vector<int64_t> log10_density_histogram;
  static constexpr int kDensityBins = 20;
};

// What one step reports (global over the data-parallel group).
struct StepMetrics {
  int64_t step = 0;          // steps completed, this one included
  int64_t tokens = 0;        // details/n_training_tokens
  double learning_rate = 0;  // details/current_learning_rate
  double l1_coefficient = 0;
  double overall_loss = 0;                  // losses/overall_loss
  double mse_loss = 0;                      // losses/mse_loss
  double l1_loss = 0;                       // losses/l1_loss (sum |f| averaged, no coefficient)
  double ghost_grad_loss = 0;               // losses/ghost_grad_loss
  double aux_loss = 0;  // losses/auxiliary_reconstruction_loss (topk, batchtopk family, gated)
  double l0_coefficient = 0;  // jumprelu: after warm-up
  double l0_loss = 0;         // losses/l0_loss (jumprelu, with its coefficient)
  double pre_act_loss = 0;    // losses/pre_act_loss (jumprelu)
  double inner_mse_loss = 0;  // sum over widths of losses/inner_mse_loss_{width} (matryoshka)
  double topk_threshold = 0;  // metrics/topk_threshold (batchtopk family, after the step)
  double l0 = 0;                            // metrics/l0
  double explained_variance = 0;            // metrics/explained_variance
  double explained_variance_std = 0;        // metrics/explained_variance_std
  double l2_norm = 0;                       // metrics/l2_norm
  double l2_ratio = 0;                      // metrics/l2_ratio
  int64_t dead_features = 0;                // sparsity/dead_features (the step's dead mask)
  double mean_passes_since_fired = 0;       // sparsity/mean_passes_since_fired
  std::optional<SparsityMetrics> sparsity;  // at feature-sampling-window boundaries
};

// Produces batches of activations [B,d_in] for resampling (the next batches of the stream).
using BatchSource = std::function<absl::StatusOr<at::Tensor>()>;

class SaeTrainer {
 public:
  // `collective` may be null (one process); it must outlive the trainer.
  SaeTrainer(const TrainerOptions& options, Collective* collective);
  // Starts from existing SAE parameters (from_pretrained_path).
  SaeTrainer(const TrainerOptions& options, SaeParameters params, Collective* collective);

  // normalize_activations expected_average_only_in, before the first step of a fresh run (a
  // resumed one restores its factor): true until EstimateActivationScale has run.
  bool NeedsActivationScale() const;
  // Reads `batches` batches from `source` on every rank (they are not trained on, as in
  // SAELens 6) and sets the factor sqrt(d_in) / mean ||x|| over all of them (all ranks).
  absl::Status EstimateActivationScale(const BatchSource& source, int64_t batches);
  // The same in two parts, for several SAEs that read one stream: every batch's activations
  // (this SAE's columns) go to AddToActivationScaleEstimate, then FinishActivationScaleEstimate
  // (collective over the group) sets the factor.
  absl::Status AddToActivationScaleEstimate(const at::Tensor& batch);
  absl::Status FinishActivationScaleEstimate(int64_t batches);
  // The expected_average_only_in factor (0 until estimated; 0 for other settings).
  double activation_scale() const { return activation_scale_; }
  // What the SAE trains on for activations x [N,d_in]: x times the factor
  // (expected_average_only_in), each x scaled to norm sqrt(d_in) (constant_norm_rescale), or x.
  at::Tensor TrainingInput(const at::Tensor& x) const;
  // The SAE as it is exported and evaluated, on the model's activations, in the form every
  // reader computes (the encoder reads x - b_dec): with expected_average_only_in, the factor s
  // folded into copies of the weights (W_enc * s, W_dec / s, b_dec / s, as SAELens 6's
  // fold_activation_norm_scaling_factor) and normalize_activations none in the options; with
  // apply_b_dec_to_input false, b_dec W_enc added to b_enc (gated: to b_gate, and
  // b_dec (W_enc * exp(r_mag)) to b_mag) and apply_b_dec_to_input true. Otherwise the SAE's
  // own parameters and options.
  SaeParameters InferenceParameters() const;
  SaeOptions InferenceOptions() const;

  // Sets b_dec by options().b_dec_init from `sample` [N,d_in] (the seed uses its first storage
  // buffer), as TrainingInput scales it. In a group, rank 0's sample decides and is broadcast.
  // Call before the first step (after EstimateActivationScale when it is needed).
  absl::Status InitializeDecoderBias(const at::Tensor& sample);

  // One step on this rank's batch [B,d_in] of the model's activations (TrainingInput scales
  // it). `resample_source` is used only when anthropic
  // resampling is on and a window ends (rank 0's batches decide in a group).
  absl::StatusOr<StepMetrics> Step(const at::Tensor& batch,
                                   const BatchSource& resample_source = {});

  // Writes everything needed to continue exactly: parameters, Adam moments and step, step and
  // token counters, dead-feature counters, feature-frequency accumulators, RNG state, and
  // `extra` (opaque strings such as data cursors). Atomic per file; `dir` is created.
  absl::Status SaveState(const std::string& dir,
                         const std::map<std::string, std::string>& extra = {}) const;
  // Restores what SaveState wrote; returns `extra`. FailedPrecondition when the checkpoint's
  // shapes or architecture differ from options().
  absl::StatusOr<std::map<std::string, std::string>> LoadState(const std::string& dir);

  const TrainerOptions& options() const { return options_; }
  const SparseAutoencoder& sae() const { return sae_; }
  SparseAutoencoder& sae() { return sae_; }
  int64_t step() const { return step_; }
  int64_t tokens_seen() const { return tokens_seen_; }
  // Fraction of tokens on which each feature fired, over the current window (or, right after a
  // window ended, the window that ended). [d_sae] float32.
  at::Tensor FeatureSparsity() const;
  const at::Tensor& passes_since_fired() const { return passes_since_fired_; }
  // The gradients the last step applied (reduced over the group, with the part parallel to
  // each decoder row removed), in the order of SaeParameters::List(). Views, overwritten by the
  // next step.
  std::vector<at::Tensor> last_gradients() const { return buffer_.gradients(); }

 private:
  at::Tensor DeadMask() const;
  LossOptions StepLossOptions() const;
  // batchtopk family in a group: the forward whose selection is over the global batch.
  absl::StatusOr<ForwardPass> GroupBatchForward(const at::Tensor& batch);
  SparsityMetrics WindowMetrics() const;
  absl::StatusOr<int64_t> ResampleDeadFeatures(const BatchSource& source);
  absl::Status Reduce(at::Tensor& t);

  TrainerOptions options_;
  Collective* collective_;
  SingleProcess single_;
  SparseAutoencoder sae_;
  Adam adam_;
  StepBuffer buffer_;
  at::Generator generator_;
  int64_t step_ = 0;
  int64_t tokens_seen_ = 0;
  at::Tensor passes_since_fired_;  // [d_sae] int64: steps since each feature last fired
  at::Tensor act_freq_scores_;     // [d_sae] float64: tokens fired on in the current window
  int64_t window_tokens_ = 0;      // n_frac_active_tokens
  double activation_scale_ = 0;    // expected_average_only_in's factor; 0: not estimated
  at::Tensor norm_totals_;         // [sum of norms, count] while the factor is estimated
  at::Tensor last_window_sparsity_;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SAE_TRAINER_H_
