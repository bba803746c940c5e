// What `saectl eval` and `saectl features` share: an SAE folder read with what its cfg.json says
// about how it was trained, and the model options and context packing that follow, flags
// overriding cfg.json.
#ifndef SAE_TOOLS_SAECTL_SAE_INPUTS_H_
#define SAE_TOOLS_SAECTL_SAE_INPUTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/eval/sae_for_eval.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_model.h"

namespace sae::saectl {

// The flags both commands take (empty or 0: the SAE's cfg.json).
struct SaeInputFlags {
  std::string sae_dir;
  int64_t context_size = 0;
  std::string prepend_bos;  // "true" | "false" | ""
  std::string processing;   // "transformer_lens" | "transformer_lens_uncentered" | "none" | ""
  std::string dtype = "float32";
};

struct SaeInputs {
  io::SaeLensSae saelens;
  eval::SaeForEval sae;
  int64_t context_size = 0;
  bool prepend_bos = true;
  model::ModelOptions model_options;
};

// Reads the SAE folder and settles context size, prepend_bos, processing and dtype. Errors
// name the flag or the cfg.json key and the fix.
absl::StatusOr<SaeInputs> ReadSaeInputs(const SaeInputFlags& flags);

// "true" or "false"; InvalidArgument names `flag` otherwise.
absl::StatusOr<bool> ParseBool(const std::string& flag, const std::string& value);

// The tokenizer's folder: `tokenizer` when given, else the model folder when it holds
// vocab.json or encoder.json, else the default cache folder.
std::string TokenizerFolderFor(const std::string& tokenizer, const std::string& model);

// The dataset the SAE is run over, packed as training packs it (context size, BOS), read with
// the tokenizer of TokenizerFolderFor when it loads (handed to `tokenizer_out` when given; null
// when it did not load, with why in `tokenizer_status`). Errors name --dataset, and --tokenizer
// when the tokenizer could not be loaded.
absl::StatusOr<std::shared_ptr<const data::Dataset>> OpenDatasetFor(
    const std::string& dataset, const std::string& tokenizer, const std::string& model,
    int64_t context_size, bool prepend_bos, int64_t vocab_size,
    std::unique_ptr<tokenizer::Gpt2Tokenizer>* tokenizer_out = nullptr,
    absl::Status* tokenizer_status = nullptr);

// The folder of a downloaded checkpoint that holds a SAELens SAE: `root` itself, its sae/
// folder (core/training/checkpoint.h), or any folder below with cfg.json and
// sae_weights.safetensors; nullopt when there is none.
std::optional<std::string> FindSaeLensFolder(const std::string& root);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_SAE_INPUTS_H_
