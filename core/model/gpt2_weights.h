// GPT-2 parameters in Hugging Face's layout: loading, saving and GPT-2's random initialisation.
#ifndef SAE_CORE_MODEL_GPT2_WEIGHTS_H_
#define SAE_CORE_MODEL_GPT2_WEIGHTS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/gpt2_config.h"

namespace sae::model {

// One transformer block. Conv1D weights are stored [in, out]: y = x @ W + b.
struct Gpt2BlockWeights {
  at::Tensor ln_1_weight, ln_1_bias;                // [D]
  at::Tensor attn_c_attn_weight, attn_c_attn_bias;  // [D,3D], [3D]  (q | k | v)
  at::Tensor attn_c_proj_weight, attn_c_proj_bias;  // [D,D], [D]
  at::Tensor ln_2_weight, ln_2_bias;                // [D]
  at::Tensor mlp_c_fc_weight, mlp_c_fc_bias;        // [D,Dm], [Dm]
  at::Tensor mlp_c_proj_weight, mlp_c_proj_bias;    // [Dm,D], [D]
};

// Float32 CPU tensors exactly as Hugging Face's GPT2LMHeadModel holds them.
struct Gpt2Weights {
  Gpt2Config config;
  at::Tensor wte;  // [V,D]
  at::Tensor wpe;  // [P,D]
  std::vector<Gpt2BlockWeights> blocks;
  at::Tensor ln_f_weight, ln_f_bias;  // [D]
  at::Tensor lm_head;                 // [V,D]; the same tensor as wte when tied
  bool tied_lm_head = true;

  // (name, tensor) in Hugging Face's base-model naming without the "transformer." prefix
  // ("wte.weight", "h.0.attn.c_attn.weight", ...), plus "lm_head.weight" when not tied.
  std::vector<std::pair<std::string, at::Tensor>> Named() const;
  int64_t ParameterCount() const;
};

// Loads `folder`/config.json and `folder`/model.safetensors (or the shards listed in
// model.safetensors.index.json). Keys may carry the "transformer." prefix or not;
// "lm_head.weight" is tied to wte when absent; the attention mask buffers of old checkpoints
// ("h.L.attn.bias", "h.L.attn.masked_bias") are ignored. A missing tensor is NotFound naming
// the key; a wrongly shaped one is InvalidArgument naming the key, the expected and the found
// shape. F16/BF16/F64 weights are converted to float32.
absl::StatusOr<Gpt2Weights> LoadGpt2Weights(const std::string& folder);
// The same with `config` already read from `folder`/config.json (LoadGpt2Config), for a caller
// that read it before: the file is not read again.
absl::StatusOr<Gpt2Weights> LoadGpt2Weights(const std::string& folder, const Gpt2Config& config);

// GPT-2's initialisation (Hugging Face's GPT2PreTrainedModel._init_weights): every weight
// normal(0, 0.02), the residual projections (attn.c_proj, mlp.c_proj) normal(0, 0.02 /
// sqrt(2 * n_layer)), biases 0, LayerNorm weights 1. Deterministic for a given seed.
Gpt2Weights RandomGpt2Weights(const Gpt2Config& config, uint64_t seed);

// Writes config.json and model.safetensors (metadata {"format": "pt"}, keys without prefix,
// tied lm_head omitted) that Hugging Face's GPT2Model and GPT2LMHeadModel load.
absl::Status SaveGpt2(const Gpt2Weights& weights, const std::string& folder);

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_GPT2_WEIGHTS_H_
