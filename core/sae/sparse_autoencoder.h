// The SAE's parameters and its forward and backward passes, written out by hand (no autograd):
// the seed's standard SAE with ghost gradients, and TopK with AuxK whose backward touches only
// the active latents.
#ifndef SAE_CORE_SAE_SPARSE_AUTOENCODER_H_
#define SAE_CORE_SAE_SPARSE_AUTOENCODER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "core/config/defaults.h"
#include "core/sae/sae_options.h"

namespace sae::sparse {

// Parameters in SAELens's layout. All contiguous float32 on CPU.
struct SaeParameters {
  at::Tensor W_enc;  // [d_in, d_sae]
  at::Tensor b_enc;  // [d_sae]
  at::Tensor W_dec;  // [d_sae, d_in]
  at::Tensor b_dec;  // [d_in]

  std::vector<at::Tensor> List() const { return {W_enc, b_enc, W_dec, b_dec}; }
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
    kNumScalars,
  };

  StepBuffer(int64_t d_in, int64_t d_sae);

  at::Tensor& flat() { return flat_; }
  // Gradients in the order of SaeParameters::List().
  std::vector<at::Tensor> gradients() const { return {W_enc, b_enc, W_dec, b_dec}; }
  // The gradient part of the flat buffer (for averaging after a reduction).
  at::Tensor gradient_span() const { return flat_.narrow(0, 0, gradient_numel_); }
  double scalar(Scalar s) const { return scalars.data_ptr<float>()[s]; }
  void set_scalar(Scalar s, double v) { scalars.data_ptr<float>()[s] = static_cast<float>(v); }

  at::Tensor W_enc, b_enc, W_dec, b_dec;  // gradients
  at::Tensor fired;                       // [d_sae]: tokens on which each latent fired (f > 0)
  at::Tensor scalars;                     // [kNumScalars]

 private:
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
  double l1_coefficient = config::defaults::kL1Coefficient;
  bool use_ghost_grads = config::defaults::kUseGhostGrads;
  double aux_k_coefficient = config::defaults::kAuxKCoefficient;
  at::Tensor dead_mask;  // [d_sae] bool: dead latents (ghost grads or AuxK); may be undefined
};

// The activations of one forward, kept for the backward.
struct ForwardPass {
  at::Tensor x;             // [B,d_in]
  at::Tensor sae_in;        // [B,d_in]: x - b_dec
  at::Tensor hidden_pre;    // [B,d_sae] (standard: only kept when ghost gradients may need it)
  at::Tensor feature_acts;  // standard: [B,d_sae] relu(h)
  at::Tensor topk_indices;  // topk: [B,k] int64
  at::Tensor topk_values;   // topk: [B,k] relu of the top-k pre-activations
  at::Tensor x_hat;         // [B,d_in]
};

class SparseAutoencoder {
 public:
  // The seed's initialisation: W_enc and W_dec Kaiming-uniform (torch's kaiming_uniform_
  // defaults: bound sqrt(6 / fan_in), fan_in = size(1)), rows of W_dec normalised, biases 0.
  // TopK uses the tied init W_enc = W_dec^T. Deterministic for a seed.
  SparseAutoencoder(const SaeOptions& options, uint64_t seed);
  // Wraps existing parameters (checked against `options`).
  SparseAutoencoder(const SaeOptions& options, SaeParameters params);

  const SaeOptions& options() const { return options_; }
  SaeParameters& params() { return params_; }
  const SaeParameters& params() const { return params_; }

  // Scales every row of W_dec to unit norm.
  void NormalizeDecoderRows();
  // g_i -= (g_i . w_i) w_i for every decoder row (the rows must be unit norm).
  void RemoveGradientParallelToDecoder(at::Tensor& grad_W_dec) const;

  // Encoder and decoder on a batch x [B,d_in]. `keep_hidden_pre`: keep the pre-activations
  // (needed when ghost gradients or AuxK may run).
  ForwardPass Forward(const at::Tensor& x, bool keep_hidden_pre) const;

  // Sums of x and of x - x_hat over the batch: [2, d_in]. Divided by the global batch size they
  // give BatchMoments.
  static at::Tensor MomentSums(const ForwardPass& pass);

  // Losses, gradients (written into buffer's gradient views, which are overwritten) and the
  // step's statistics (written into buffer.fired and buffer.scalars).
  void Backward(const ForwardPass& pass, const BatchMoments& moments, const LossOptions& loss,
                StepBuffer& buffer) const;

  // Dense feature activations [B,d_sae] (inference).
  at::Tensor Encode(const at::Tensor& x) const;
  // x_hat [B,d_in] (inference).
  at::Tensor Reconstruct(const at::Tensor& x) const;

 private:
  void BackwardStandard(const ForwardPass& pass, const BatchMoments& moments,
                        const LossOptions& loss, StepBuffer& buffer) const;
  void BackwardTopK(const ForwardPass& pass, const LossOptions& loss, StepBuffer& buffer) const;
  void RecordReconstructionStats(const ForwardPass& pass, const BatchMoments& moments,
                                 StepBuffer& buffer) const;

  SaeOptions options_;
  SaeParameters params_;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SPARSE_AUTOENCODER_H_
