// Test support: small GPT-2s whose every parameter (biases and LayerNorm affine maps included)
// is random, so that weight processing has something to fold.
#ifndef SAE_TESTS_SUPPORT_RANDOM_GPT2_H_
#define SAE_TESTS_SUPPORT_RANDOM_GPT2_H_

#include "core/model/gpt2_weights.h"

namespace sae::support {

// A 2-layer GPT-2 of d_model 32 (4 heads, 64 positions) with GPT-2's vocabulary: the model of
// the tests that run a real tokenizer's ids or a run's files through it.
inline model::Gpt2Config TinyConfig() {
  model::Gpt2Config c;
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_positions = 64;
  return c;
}

// A 3-layer GPT-2 of d_model 32 (4 heads) with a vocabulary of 97 and 16 positions.
inline model::Gpt2Config SmallConfig() {
  model::Gpt2Config c = TinyConfig();
  c.n_layer = 3;
  c.n_positions = 16;
  c.vocab_size = 97;
  return c;
}

inline model::Gpt2Weights FullyRandomWeights(const model::Gpt2Config& c, uint64_t seed) {
  model::Gpt2Weights w = model::RandomGpt2Weights(c, seed);
  at::manual_seed(seed + 1);
  for (model::Gpt2BlockWeights& b : w.blocks) {
    for (at::Tensor* t : {&b.ln_1_bias, &b.attn_c_attn_bias, &b.attn_c_proj_bias, &b.ln_2_bias,
                          &b.mlp_c_fc_bias, &b.mlp_c_proj_bias}) {
      *t = at::randn_like(*t) * 0.1;
    }
    b.ln_1_weight = 1 + 0.2 * at::randn_like(b.ln_1_weight);
    b.ln_2_weight = 1 + 0.2 * at::randn_like(b.ln_2_weight);
  }
  w.ln_f_weight = 1 + 0.2 * at::randn_like(w.ln_f_weight);
  w.ln_f_bias = 0.1 * at::randn_like(w.ln_f_bias);
  // Larger weights than GPT-2's initialisation give attention patterns far from uniform.
  for (model::Gpt2BlockWeights& b : w.blocks) b.attn_c_attn_weight = b.attn_c_attn_weight * 10;
  return w;
}

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_RANDOM_GPT2_H_
