// JumpReLU SAE (Rajamanoharan et al. 2024, https://arxiv.org/abs/2407.14435; SAELens 6's
// jumprelu_sae.py). docs/definitions.md has the formulas.
//
// f = h * 1[h > threshold] per latent, h = (x - b_dec) W_enc + b_enc. The threshold is trained
// through a straight-through estimator with a rectangle kernel of width jumprelu_bandwidth. As
// in SAELens 6 the threshold is a parameter itself (not its logarithm) and is projected onto
// threshold >= 0 before every step (SaeTrainer::Step).
#ifndef SAE_CORE_SAE_JUMP_RELU_H_
#define SAE_CORE_SAE_JUMP_RELU_H_

#include <ATen/ATen.h>

#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {

// x [B,d_in] -> pass.x, sae_in, hidden_pre, feature_acts, x_hat.
// `b_dec_in_input`: the encoder reads x - b_dec (SaeOptions::apply_b_dec_to_input), else x.
// `max_density`: the sparse step (pass.entries, no dense feature_acts) when the batch's density
// is at most this (SparseAutoencoder::sparse_step_max_density); negative: always dense.
ForwardPass JumpReLUForward(const SaeParameters& params, const at::Tensor& x,
                            bool b_dec_in_input, double max_density = -1);

// mse + l0_loss (step or tanh form, with loss.l0_coefficient) + pre_act_loss (when
// loss.pre_act_loss_coefficient is set: on dead latents only). Gradients of every parameter,
// the threshold's through the estimator. The decoder-norm factors of the tanh and pre-act
// losses enter their values; their gradients are parallel to the decoder rows, which the
// trainer removes, so they are left out.
void JumpReLUBackward(const SaeParameters& params, const ForwardPass& pass,
                      const LossOptions& loss, StepBuffer& buffer);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_JUMP_RELU_H_
