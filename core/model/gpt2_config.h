// GPT-2's hyper-parameters as Hugging Face's config.json spells them.
#ifndef SAE_CORE_MODEL_GPT2_CONFIG_H_
#define SAE_CORE_MODEL_GPT2_CONFIG_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/hook_point.h"

namespace sae::model {

struct Gpt2Config {
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;        // d_model
  int n_positions = 1024;  // n_ctx
  int vocab_size = 50257;
  int n_inner = 0;  // d_mlp; 0 means 4 * n_embd (config.json's null)
  double layer_norm_epsilon = 1e-5;
  std::string activation_function = "gelu_new";  // tanh approximation of GELU

  int d_mlp() const { return n_inner > 0 ? n_inner : 4 * n_embd; }
  int d_head() const { return n_embd / n_head; }
  ModelDims dims() const { return {n_layer, n_embd, n_head, d_mlp(), n_positions, vocab_size}; }

  // The config.json text Hugging Face's GPT2Model / GPT2LMHeadModel load.
  std::string ToJson() const;
};

// Parses config.json text. Missing fields take GPT-2 small's values; an n_embd not divisible
// by n_head, a non-positive size or an activation other than gelu_new / gelu is
// InvalidArgument naming `source` and the field.
absl::StatusOr<Gpt2Config> ParseGpt2Config(absl::string_view json_text, absl::string_view source);

// Reads `folder`/config.json.
absl::StatusOr<Gpt2Config> LoadGpt2Config(const std::string& folder);

// Named shapes: "gpt2-small" (also "gpt2"), "gpt2-medium", "gpt2-large", "gpt2-xl", and
// "gpt2-tiny" (2 layers, d_model 64, 4 heads, the real vocabulary), "gpt2-mini" (4 layers,
// d_model 128, 4 heads, context 128: `saectl model train`'s default, sized for training on 2
// cores in minutes). NotFound lists the names.
absl::StatusOr<Gpt2Config> Gpt2Preset(absl::string_view name);

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_GPT2_CONFIG_H_
