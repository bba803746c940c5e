// SAELens's on-disk format: what `SAE.load_from_disk(dir)` reads.
//
//   dir/cfg.json                 the SAE's config (d_in, d_sae, hook_name, architecture, ...)
//   dir/sae_weights.safetensors  W_enc [d_in,d_sae], b_enc [d_sae], W_dec [d_sae,d_in],
//                                b_dec [d_in]; jumprelu adds threshold [d_sae]; gated has
//                                b_gate, b_mag, r_mag [d_sae] and no b_enc
//   dir/sparsity.safetensors     sparsity [d_sae]: log10 feature frequency (optional)
#ifndef SAE_CORE_IO_SAELENS_H_
#define SAE_CORE_IO_SAELENS_H_

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sae::io {

// Where an SAE came from, as cfg.json records it.
struct SaeLensMetadata {
  std::string architecture = "standard";  // standard | topk | jumprelu | gated
  int64_t k = 0;                          // topk only
  std::string model_name = "gpt2-small";
  std::string hook_name;
  int hook_layer = 0;
  int hook_head_index = -1;  // -1: null
  int context_size = 128;
  bool prepend_bos = true;
  std::string dataset_path;
  std::string dtype = "float32";
  std::string device = "cpu";
  // TransformerLens weight processing the activations came from (from_pretrained defaults).
  bool processed_weights = true;
};

struct SaeLensSae {
  at::Tensor W_enc, b_enc, W_dec, b_dec;  // float32 (gated: b_enc undefined)
  at::Tensor threshold;                   // jumprelu: [d_sae]
  at::Tensor b_gate, b_mag, r_mag;        // gated: [d_sae] each
  at::Tensor sparsity;                    // log10 feature frequency [d_sae]; may be undefined
  SaeLensMetadata metadata;
  nlohmann::json cfg;  // the full cfg.json (read), or extra fields to write
};

// Writes the three files (atomically each). InvalidArgument when shapes disagree.
absl::Status WriteSaeLens(const std::string& dir, const SaeLensSae& sae);

// Reads and validates a SAELens directory: cfg.json has d_in and d_sae; weights have the
// shapes they imply (jumprelu: threshold, or log_threshold of older SAELens, read as its exp;
// gated: b_gate, b_mag, r_mag). Errors name the file and the field or tensor.
absl::StatusOr<SaeLensSae> ReadSaeLens(const std::string& dir);

// The cfg.json SAELens expects for `sae` (every field docs/definitions.md lists, plus SAELens's
// activation_fn_str / activation_fn_kwargs for older readers).
nlohmann::json SaeLensConfig(const SaeLensSae& sae);

}  // namespace sae::io

#endif  // SAE_CORE_IO_SAELENS_H_
