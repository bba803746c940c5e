// SAELens's on-disk format: what `SAE.load_from_disk(dir)` reads.
//
//   dir/cfg.json                 the SAE's config: SAELens 6's form (written and read) or the
//                                flat form of SAELens < 6 and of this project's older exports
//                                (read)
//   dir/sae_weights.safetensors  W_enc [d_in,d_sae], b_enc [d_sae], W_dec [d_sae,d_in],
//                                b_dec [d_in]; jumprelu adds threshold [d_sae]; gated has
//                                b_gate, b_mag, r_mag [d_sae] and no b_enc
//   dir/sparsity.safetensors     sparsity [d_sae]: log10 feature frequency (optional)
//
// SAELens 6's cfg.json (SAE.save_model: SAEConfig.to_dict()) holds the architecture's fields at
// the top level (architecture, d_in, d_sae, dtype, device, apply_b_dec_to_input,
// normalize_activations, reshape_activations; topk adds k and rescale_acts_by_decoder_norm)
// and where the SAE came from under "metadata" (model_name, hook_name, hook_head_index,
// context_size, prepend_bos, seqpos_slice, model_from_pretrained_kwargs, dataset_path,
// sae_lens_version, ...). SAELens reads a file whose metadata.sae_lens_version is below 6.0 (or
// absent) as the flat form. docs/definitions.md describes both forms.
#ifndef SAE_CORE_IO_SAELENS_H_
#define SAE_CORE_IO_SAELENS_H_

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sae::io {

// The SAELens format version this project writes in metadata.sae_lens_version: the first
// version of SAELens 6's nested cfg.json, so that SAELens 6 reads the file as that form.
inline constexpr char kSaeLensFormatVersion[] = "6.0.0";

// Where an SAE came from and what it computes, as cfg.json records it.
struct SaeLensMetadata {
  // standard | topk | jumprelu | gated (SAELens writes BatchTopK SAEs as jumprelu with their
  // threshold).
  std::string architecture = "standard";
  int64_t k = 0;  // topk only
  // cfg.json's normalize_activations: "none" or "constant_norm_rescale" (applied at inference;
  // expected_average_only_in is folded into the weights before export, as SAELens 6 does).
  std::string normalize_activations = "none";
  std::string model_name = "gpt2-small";
  std::string hook_name;
  int hook_layer = 0;  // derived from hook_name (blocks.L.*) when cfg.json lacks it
  int hook_head_index = -1;  // -1: null
  int context_size = 128;
  bool prepend_bos = true;
  std::string dataset_path;
  std::string dtype = "float32";
  std::string device = "cpu";
  // TransformerLens weight processing the activations came from, as model_from_pretrained_kwargs
  // says: "transformer_lens" (from_pretrained's defaults: every flag true or absent),
  // "transformer_lens_uncentered" (only center_writing_weights false, SAELens's default) or
  // "none" (any other flag false).
  std::string processing = "transformer_lens";

  // As read (ReadSaeLens): "saelens6" (nested metadata) or "flat"; the metadata's
  // sae_lens_version ("" when absent); and what ReadSaeLens folded into the weights so that
  // they compute relu((x - b_dec) W_enc + b_enc) (topk/jumprelu alike) with unscaled
  // activations: "apply_b_dec_to_input" (false in the file: b_enc += b_dec W_enc) and
  // "rescale_acts_by_decoder_norm" (true in the file: W_enc, b_enc times the decoder row
  // norms, W_dec rows divided by them; the same function, as SAELens's fold_W_dec_norm).
  std::string format = "saelens6";
  std::string sae_lens_version;
  std::vector<std::string> folded;
};

struct SaeLensSae {
  at::Tensor W_enc, b_enc, W_dec, b_dec;  // float32 (gated: b_enc undefined)
  at::Tensor threshold;                   // jumprelu: [d_sae]
  at::Tensor b_gate, b_mag, r_mag;        // gated: [d_sae] each
  at::Tensor sparsity;                    // log10 feature frequency [d_sae]; may be undefined
  SaeLensMetadata metadata;
  // Read: the full cfg.json, with apply_b_dec_to_input and rescale_acts_by_decoder_norm set to
  // what the folded weights mean (true, false). Written: extra fields for "metadata" (this
  // project's training record: training_tokens, training_steps, ...).
  nlohmann::json cfg;
};

// Writes the three files (atomically each) with SAELens 6's cfg.json. InvalidArgument when
// shapes disagree.
absl::Status WriteSaeLens(const std::string& dir, const SaeLensSae& sae);

// Reads and validates a SAELens directory in SAELens 6's form or the flat one (SAELens < 6,
// this project's older exports): architectures standard, topk, jumprelu (threshold, or
// log_threshold as older JumpReLU folders store it) and gated (b_gate, b_mag, r_mag);
// normalize_activations must be none. Weights must have the shapes cfg.json implies. Errors name
// the file and the field or tensor (InvalidArgument; Unimplemented for an architecture or
// setting this project cannot compute).
absl::StatusOr<SaeLensSae> ReadSaeLens(const std::string& dir);

// The cfg.json written for `sae`: SAELens 6's SAEConfig.to_dict() of the architecture, with
// sae.cfg's fields added to "metadata".
nlohmann::json SaeLensConfig(const SaeLensSae& sae);

}  // namespace sae::io

#endif  // SAE_CORE_IO_SAELENS_H_
