// Gated SAE (Rajamanoharan et al. 2024, https://arxiv.org/abs/2404.16014; SAELens 6's
// gated_sae.py). docs/definitions.md has the formulas.
//
// The gating path pi_gate = (x - b_dec) W_enc + b_gate decides which latents fire; the
// magnitude path pi_mag = (x - b_dec) (W_enc * exp(r_mag)) + b_mag, sharing W_enc, gives their
// size: f = 1[pi_gate > 0] * relu(pi_mag). The sparsity penalty is L1 on relu(pi_gate), and an
// auxiliary loss makes relu(pi_gate) reconstruct x through the decoder held frozen (the paper's
// choice; SAELens 6 lets that loss's gradient reach W_dec and b_dec too).
#ifndef SAE_CORE_SAE_GATED_H_
#define SAE_CORE_SAE_GATED_H_

#include <ATen/ATen.h>

#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {

// x [B,d_in] -> pass.x, sae_in, gate_pre (pi_gate), hidden_pre (pi_mag), feature_acts, x_hat.
// `b_dec_in_input`: the encoder reads x - b_dec (SaeOptions::apply_b_dec_to_input), else x.
// `max_density`: the sparse step (pass.entries, no dense feature_acts) when the batch's density
// is at most this (SparseAutoencoder::sparse_step_max_density); negative: always dense.
ForwardPass GatedForward(const SaeParameters& params, const at::Tensor& x, bool b_dec_in_input,
                         double max_density = -1);

// mse + l1_coefficient * l1 + auxiliary_reconstruction_loss, where l1 = mean over tokens of
// sum_j relu(pi_gate_j) ||W_dec_j|| (its decoder-norm gradient, parallel to the rows, is left
// to the trainer's projection).
void GatedBackward(const SaeParameters& params, const ForwardPass& pass, const LossOptions& loss,
                   StepBuffer& buffer);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_GATED_H_
