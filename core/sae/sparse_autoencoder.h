// The SAE's parameters and its forward and backward passes, written out by hand (no autograd):
// the seed's standard SAE with ghost gradients, and TopK with AuxK whose backward touches only
// the active latents. The ReLU family (standard, jumprelu, gated) takes a sparse step over the
// active entries when a batch is sparse enough (kSparseStepMaxDensity). The architectures of SAELens 6 (batchtopk, matryoshka_batchtopk,
// jumprelu, gated) are in batch_topk.h, jump_relu.h and gated.h; this class dispatches to them.
#ifndef SAE_CORE_SAE_SPARSE_AUTOENCODER_H_
#define SAE_CORE_SAE_SPARSE_AUTOENCODER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config/defaults.h"
#include "core/sae/sae_options.h"

namespace sae::sparse {

struct LatentEntries;  // sparse_kernels.h

// The sparse step of the ReLU-family SAEs (standard, jumprelu, gated): after the dense encoder
// GEMM, a step whose pre-activations have at most this fraction of entries that the backward
// needs (active latents; jumprelu adds the threshold's estimator window, gated counts the open
// gates) runs the decoder, the decoder gradient, the gradient into the latents and the encoder
// gradient over those entries only; a denser step runs the dense GEMMs. Measured on the
// development machine with bench/sae_step_bench --calibrate (docs/performance.md).
inline constexpr double kSparseStepMaxDensity = 0.05;

// Parameters in SAELens's layout and names. All contiguous float32 on CPU; a tensor an
// architecture does not have is undefined.
struct SaeParameters {
  at::Tensor W_enc;  // [d_in, d_sae]
  at::Tensor b_enc;  // [d_sae] (every architecture but gated)
  at::Tensor W_dec;  // [d_sae, d_in]
  at::Tensor b_dec;  // [d_in]
  at::Tensor threshold;  // jumprelu: [d_sae], trained
  at::Tensor r_mag;      // gated: [d_sae], log scale of the magnitude path's encoder columns
  at::Tensor b_gate;     // gated: [d_sae]
  at::Tensor b_mag;      // gated: [d_sae]
  // batchtopk, matryoshka_batchtopk: [] float64, the running threshold (a buffer, not trained;
  // exported as a JumpReLU threshold).
  at::Tensor topk_threshold;

  // The trained tensors that are defined, with their SAELens names, in the order W_enc, b_enc,
  // W_dec, b_dec, threshold, r_mag, b_gate, b_mag (the order of gradients and Adam's moments).
  std::vector<std::pair<std::string, at::Tensor>> Named() const;
  std::vector<at::Tensor> List() const;
  // A deep copy (topk_threshold included).
  SaeParameters Clone() const;
};

// Gradients of the parameters, plus per-step statistics, as views into one flat float32
// buffer so that a data-parallel group reduces a whole step with a single all-reduce.
class StepBuffer {
 public:
  // Scalars summed over ranks. Means of per-rank losses are summed and divided by the world
  // size; per-token sums are divided by the global token count.
  enum Scalar : int {
    kLossSum = 0,      // overall loss (local mean)
    kMseSum,           // mse loss (local mean)
    kL1Sum,            // mean over tokens of sum_j |f_j|, without the coefficient
    kGhostSum,         // ghost-gradient loss (local mean)
    kAuxSum,           // AuxK loss (local mean)
    kL0TokenSum,       // sum over tokens of the number of active latents
    kEvTokenSum,       // sum over tokens of the explained variance
    kEvSqTokenSum,     // sum over tokens of its square
    kL2NormTokenSum,   // sum over tokens of ||x_hat||
    kL2RatioTokenSum,  // sum over tokens of ||x_hat|| / ||x||
    kTokens,           // tokens in the batch
    kL0LossSum,        // jumprelu: losses/l0_loss with its coefficient (local mean)
    kPreActSum,        // jumprelu: losses/pre_act_loss (local mean)
    kInnerMseSum,      // matryoshka: sum of losses/inner_mse_loss_{width} (local means)
    kNumScalars,
  };

  // Gradients shaped like W_enc, b_enc, W_dec and b_dec.
  StepBuffer(int64_t d_in, int64_t d_sae);
  // Gradients shaped like each tensor of params.Named().
  explicit StepBuffer(const SaeParameters& params);

  at::Tensor& flat() { return flat_; }
  // Gradients in the order of SaeParameters::List().
  std::vector<at::Tensor> gradients() const { return gradients_; }
  // The gradient part of the flat buffer (for averaging after a reduction).
  at::Tensor gradient_span() const { return flat_.narrow(0, 0, gradient_numel_); }
  double scalar(Scalar s) const { return scalars.data_ptr<float>()[s]; }
  void set_scalar(Scalar s, double v) { scalars.data_ptr<float>()[s] = static_cast<float>(v); }

  // Gradients (undefined where the parameter is).
  at::Tensor W_enc, b_enc, W_dec, b_dec, threshold, r_mag, b_gate, b_mag;
  at::Tensor fired;    // [d_sae]: tokens on which each latent fired (f > 0)
  at::Tensor scalars;  // [kNumScalars]

 private:
  void Allocate(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                int64_t d_sae);

  std::vector<at::Tensor> gradients_;
  at::Tensor flat_;
  int64_t gradient_numel_ = 0;
};

// Global statistics of the batch that the normalised losses need. In one process they are the
// local batch's; in a data-parallel group, the whole global batch's.
struct BatchMoments {
  at::Tensor x_mean;         // [d_in]: mean input over the batch
  at::Tensor residual_mean;  // [d_in]: mean of x - x_hat over the batch
};

struct LossOptions {
  double l1_coefficient = config::defaults::kL1Coefficient;  // standard, gated
  bool use_ghost_grads = config::defaults::kUseGhostGrads;
  double aux_k_coefficient = config::defaults::kAuxKCoefficient;  // topk, batchtopk family
  // jumprelu.
  double l0_coefficient = config::defaults::kL0Coefficient;
  double jumprelu_bandwidth = config::defaults::kJumpReLUBandwidth;
  config::JumpReLUSparsityLoss jumprelu_sparsity_loss = config::defaults::kJumpReLUSparsityLoss;
  double jumprelu_tanh_scale = config::defaults::kJumpReLUTanhScale;
  double target_l0 = 0;  // quadratic
  bool jumprelu_ste_to_input = config::defaults::kJumpReLUSteToInput;
  std::optional<double> pre_act_loss_coefficient;
  // [d_sae] bool: dead latents (ghost grads, AuxK, pre-activation loss); may be undefined.
  at::Tensor dead_mask;
};

// batchtopk family: which activations one batch keeps. `threshold` is the (k * B)-th largest
// of relu(hidden_pre) over the global batch; kept are the positive activations >= threshold.
// `min_kept` is the smallest kept activation (0 when none is kept), the running threshold's
// sample.
struct BatchSelection {
  double threshold = 0;
  double min_kept = 0;
};

// The activations of one forward, kept for the backward.
struct ForwardPass {
  at::Tensor x;             // [B,d_in]
  at::Tensor sae_in;        // [B,d_in]: x - b_dec (x when b_dec_in_input is false)
  bool b_dec_in_input = true;  // SaeOptions::apply_b_dec_to_input of the forward
  at::Tensor hidden_pre;    // [B,d_sae] (standard: only kept when ghost gradients may need it)
  at::Tensor feature_acts;  // standard: [B,d_sae] relu(h)
  at::Tensor topk_indices;  // topk: [B,k] int64
  at::Tensor topk_values;   // topk: [B,k] relu of the top-k pre-activations
  at::Tensor gate_pre;      // gated: [B,d_sae] the gating path's pre-activations
  BatchSelection selection;  // batchtopk family
  at::Tensor x_hat;         // [B,d_in]
  // standard, jumprelu, gated: set when the forward chose the sparse step (then feature_acts is
  // undefined): the active entries by latent (gated: the open gates, with the magnitude path's
  // pre-activation as `extra`).
  std::shared_ptr<const LatentEntries> entries;
};

class SparseAutoencoder {
 public:
  // The seed's initialisation: W_enc and W_dec Kaiming-uniform (torch's kaiming_uniform_
  // defaults: bound sqrt(6 / fan_in), fan_in = size(1)), rows of W_dec normalised, biases 0.
  // Every architecture but standard uses the tied init W_enc = W_dec^T (SAELens 6 ties all);
  // jumprelu's threshold starts at `jumprelu_init_threshold`, gated's r_mag, b_gate and b_mag
  // at 0, the batchtopk running threshold at 0. Deterministic for a seed.
  // `decoder_init_norm` (SAELens 6's TrainingSAEConfig.decoder_init_norm): W_dec's rows start at
  // that norm and every architecture uses the tied init W_enc = W_dec^T.
  SparseAutoencoder(const SaeOptions& options, uint64_t seed,
                    double jumprelu_init_threshold = config::defaults::kJumpReLUInitThreshold,
                    std::optional<double> decoder_init_norm = std::nullopt);
  // Wraps existing parameters (checked against `options`).
  SparseAutoencoder(const SaeOptions& options, SaeParameters params);

  const SaeOptions& options() const { return options_; }

  // The density at or under which Forward and Backward take the sparse step (standard,
  // jumprelu, gated); kSparseStepMaxDensity unless set. Negative: always dense; 1: always sparse.
  double sparse_step_max_density() const { return sparse_step_max_density_; }
  void set_sparse_step_max_density(double density) { sparse_step_max_density_ = density; }
  SaeParameters& params() { return params_; }
  const SaeParameters& params() const { return params_; }

  // Scales every row of W_dec to unit norm.
  void NormalizeDecoderRows();
  // g_i -= (g_i . w_i) w_i for every decoder row (the rows must be unit norm).
  void RemoveGradientParallelToDecoder(at::Tensor& grad_W_dec) const;

  // Encoder and decoder on a batch x [B,d_in]. `keep_hidden_pre`: keep the pre-activations
  // (needed when ghost gradients or AuxK may run). standard, jumprelu and gated take the sparse
  // step (pass.entries) when the batch's density is at most sparse_step_max_density().
  // The batchtopk family selects over this batch alone (one process).
  ForwardPass Forward(const at::Tensor& x, bool keep_hidden_pre) const;

  // batchtopk family, in three parts so that a data-parallel group can select over its global
  // batch: BeginBatchForward computes sae_in and hidden_pre; BatchTopKCandidates (batch_topk.h)
  // and SelectBatchTopK give the selection, over the group's gathered candidates; then
  // FinishBatchForward masks the activations and decodes.
  ForwardPass BeginBatchForward(const at::Tensor& x) const;
  void FinishBatchForward(ForwardPass& pass, const BatchSelection& selection) const;

  // Sums of x and of x - x_hat over the batch: [2, d_in]. Divided by the global batch size they
  // give BatchMoments.
  static at::Tensor MomentSums(const ForwardPass& pass);

  // Losses, gradients (written into buffer's gradient views, which are overwritten) and the
  // step's statistics (written into buffer.fired and buffer.scalars).
  void Backward(const ForwardPass& pass, const BatchMoments& moments, const LossOptions& loss,
                StepBuffer& buffer) const;

  // The inference forward (evaluations): Forward(x, false) for standard and topk; for the others
  // pass.x, feature_acts = Encode(x) and x_hat (the batchtopk family uses its running threshold,
  // not a selection over this batch).
  //
  // Inference reads the caller's activations: with options().normalize_activations
  // constant_norm_rescale, Infer, Encode and Reconstruct scale each x to norm sqrt(d_in) first
  // and Infer and Reconstruct scale x_hat back (pass.x is then the caller's x), as SAELens 6's
  // encode and decode do. Forward, BeginBatchForward and Backward (training) take activations
  // already scaled (SaeTrainer scales them).
  ForwardPass Infer(const at::Tensor& x) const;

  // Dense feature activations [B,d_sae] (inference; the batchtopk family applies its running
  // threshold as a JumpReLU does: relu(h) where h > topk_threshold).
  at::Tensor Encode(const at::Tensor& x) const;
  // x_hat [B,d_in] (inference).
  at::Tensor Reconstruct(const at::Tensor& x) const;

  // constant_norm_rescale: sqrt(d_in) / ||x|| per activation, [B,1]; undefined otherwise.
  at::Tensor InputScale(const at::Tensor& x) const;

 private:
  ForwardPass ForwardImpl(const at::Tensor& x, bool keep_hidden_pre, double max_density) const;
  void BackwardStandardSparse(const ForwardPass& pass, const BatchMoments& moments,
                              const LossOptions& loss, StepBuffer& buffer) const;
  // Encode on activations already scaled.
  at::Tensor EncodeScaled(const at::Tensor& x) const;
  void BackwardStandard(const ForwardPass& pass, const BatchMoments& moments,
                        const LossOptions& loss, StepBuffer& buffer) const;
  void BackwardTopK(const ForwardPass& pass, const LossOptions& loss, StepBuffer& buffer) const;
  void RecordReconstructionStats(const ForwardPass& pass, const BatchMoments& moments,
                                 StepBuffer& buffer) const;

  SaeOptions options_;
  SaeParameters params_;
  double sparse_step_max_density_ = kSparseStepMaxDensity;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SPARSE_AUTOENCODER_H_
