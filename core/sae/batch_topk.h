// BatchTopK and Matryoshka BatchTopK SAEs (SAELens 6's batchtopk_sae.py and
// matryoshka_batchtopk_sae.py; Bussmann et al. 2024, https://arxiv.org/abs/2412.06410, and
// 2025, https://arxiv.org/abs/2503.17547). docs/definitions.md has the formulas.
//
// Training keeps the k * B largest activations relu(h) of the whole batch of B tokens (k per
// token on average), which is the same as keeping the positive activations at or above the
// (k * B)-th largest one: that value is what a data-parallel group agrees on, from each rank's
// k * B largest candidates. A running threshold, the average of the smallest kept activation,
// replaces the selection at inference (relu(h) where h > threshold).
#ifndef SAE_CORE_SAE_BATCH_TOPK_H_
#define SAE_CORE_SAE_BATCH_TOPK_H_

#include <ATen/ATen.h>

#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {

// The K largest values of relu(hidden_pre) [B,d_sae], as a [K] tensor padded with zeros when
// the batch has fewer than K values (any order).
at::Tensor BatchTopKCandidates(const at::Tensor& hidden_pre, int64_t K);

// The selection that keeps the K largest of `candidates` (any length, e.g. every rank's
// candidates side by side).
BatchSelection SelectBatchTopK(const at::Tensor& candidates, int64_t K);

// From pass.hidden_pre: pass.feature_acts = relu(h) where kept, else 0; pass.x_hat. When the
// kept entries are at most `max_density` of the batch (and max_density >= 0), the sparse step
// instead: pass.entries holds the kept entries by latent, feature_acts stays undefined, and the
// decoder reads those entries only (about k per token, so a batch of k / d_sae density).
void BatchTopKFinishForward(const SaeParameters& params, const BatchSelection& selection,
                            double max_density, ForwardPass& pass);

// Losses and gradients of batchtopk (mse + AuxK) and matryoshka_batchtopk (plus one inner MSE
// per width but the last). AuxK as SAELens 6: the k_aux = d_in / 2 largest pre-activations of
// dead latents reconstruct the residual x - x_hat without b_dec. With pass.entries, the decoder
// gradient, the gradient into the latents and the encoder gradient run over the kept entries
// only, with the same results as the dense GEMMs.
void BatchTopKBackward(const SaeOptions& options, const SaeParameters& params,
                       const ForwardPass& pass, const LossOptions& loss, StepBuffer& buffer);

// The running threshold after one step: (1 - rate) * previous + rate * min_kept, unchanged when
// nothing was kept (SAELens 6's update_topk_threshold, in float64).
double UpdatedTopKThreshold(double previous, const BatchSelection& selection, double rate);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_BATCH_TOPK_H_
