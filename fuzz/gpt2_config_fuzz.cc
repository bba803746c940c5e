// GPT-2 config.json parsing on arbitrary text. Properties: ParseGpt2Config never crashes (nor
// throws); an accepted config has positive sizes and n_embd divisible by n_head, and its ToJson
// parses back to the same values.
#include "absl/strings/str_cat.h"
#include "core/model/gpt2_config.h"
#include "fuzz/scratch_dir.h"

using sae::fuzz::PropertyFailed;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = sae::model::ParseGpt2Config(sae::fuzz::AsAbslBytes(data, size), "config.json");
  if (!config.ok()) return 0;
  const sae::model::Gpt2Config& c = *config;
  if (c.n_layer <= 0 || c.n_head <= 0 || c.n_embd <= 0 || c.n_positions <= 0 || c.vocab_size <= 0 ||
      c.n_embd % c.n_head != 0 || c.d_mlp() <= 0) {
    PropertyFailed("an accepted config.json has impossible sizes:\n" + c.ToJson());
  }
  auto again = sae::model::ParseGpt2Config(c.ToJson(), "again.json");
  if (!again.ok()) PropertyFailed("ToJson is refused: " + again.status().ToString());
  if (again->n_layer != c.n_layer || again->n_head != c.n_head || again->n_embd != c.n_embd ||
      again->n_positions != c.n_positions || again->vocab_size != c.vocab_size ||
      again->d_mlp() != c.d_mlp() || again->layer_norm_epsilon != c.layer_norm_epsilon ||
      again->activation_function != c.activation_function) {
    PropertyFailed("ToJson then ParseGpt2Config changed the config:\n" + c.ToJson());
  }
  return 0;
}
