#include "tools/saectl/sae_inputs.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/status.h"

namespace sae::saectl {

absl::StatusOr<bool> ParseBool(const std::string& flag, const std::string& value) {
  if (value == "true") return true;
  if (value == "false") return false;
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " '", value, "' is not a boolean (expected true or false)"));
}

std::string TokenizerFolderFor(const std::string& tokenizer, const std::string& model) {
  if (!tokenizer.empty()) return tokenizer;
  for (const char* file : {"/vocab.json", "/encoder.json"}) {
    if (std::filesystem::exists(model + file)) return model;
  }
  return tokenizer::DefaultTokenizerDir();
}

absl::StatusOr<std::shared_ptr<const data::Dataset>> OpenDatasetFor(
    const std::string& dataset, const std::string& tokenizer, const std::string& model,
    int64_t context_size, bool prepend_bos, int64_t vocab_size,
    std::unique_ptr<tokenizer::Gpt2Tokenizer>* tokenizer_out, absl::Status* tokenizer_status_out) {
  std::unique_ptr<tokenizer::Gpt2Tokenizer> tok;
  absl::Status tokenizer_status;
  if (auto loaded = tokenizer::Gpt2Tokenizer::Load(TokenizerFolderFor(tokenizer, model));
      loaded.ok()) {
    tok = std::move(loaded).value();
  } else {
    tokenizer_status = loaded.status();
  }
  data::DatasetOptions options;
  options.dataset_path = dataset;
  options.context_size = context_size;
  options.prepend_bos = prepend_bos;
  options.vocab_size = vocab_size;
  auto opened = data::Dataset::Open(options, tok.get());
  if (tokenizer_status_out != nullptr) *tokenizer_status_out = tokenizer_status;
  if (tokenizer_out != nullptr) *tokenizer_out = std::move(tok);
  if (opened.ok()) return opened;
  std::string message = absl::StrCat("--dataset: ", opened.status().message());
  if (!tokenizer_status.ok()) {
    absl::StrAppend(&message, " (the tokenizer could not be loaded: ", tokenizer_status.message(),
                    "; give --tokenizer DIR)");
  }
  return absl::Status(opened.status().code(), message);
}

absl::StatusOr<SaeInputs> ReadSaeInputs(const SaeInputFlags& f) {
  SaeInputs in;
  SAE_ASSIGN_OR_RETURN(in.saelens, io::ReadSaeLens(f.sae_dir));
  SAE_ASSIGN_OR_RETURN(in.sae, eval::SaeForEvalFromSaeLens(in.saelens, f.sae_dir));
  const eval::SaeTrainingSetup setup = eval::TrainingSetupFromSaeLens(in.saelens);
  in.context_size = f.context_size > 0 ? f.context_size : setup.context_size;
  in.prepend_bos = setup.prepend_bos;
  if (!f.prepend_bos.empty()) {
    SAE_ASSIGN_OR_RETURN(in.prepend_bos, ParseBool("--prepend-bos", f.prepend_bos));
  }
  if (!f.processing.empty()) {
    SAE_ASSIGN_OR_RETURN(in.model_options.processing, model::ParseProcessing(f.processing));
  } else if (setup.processing) {
    in.model_options.processing = *setup.processing;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        f.sae_dir, "/cfg.json: model_from_pretrained_kwargs turns only some of TransformerLens's "
                   "weight processing on; give --processing transformer_lens, "
                   "transformer_lens_uncentered or none"));
  }
  if (f.dtype == "float32") {
    in.model_options.dtype = at::kFloat;
  } else if (f.dtype == "bfloat16") {
    in.model_options.dtype = at::kBFloat16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype '", f.dtype, "' is not supported (expected float32 or bfloat16)"));
  }
  return in;
}

std::optional<std::string> FindSaeLensFolder(const std::string& root) {
  namespace fs = std::filesystem;
  auto is_sae = [](const fs::path& dir) {
    return fs::exists(dir / "cfg.json") && fs::exists(dir / "sae_weights.safetensors");
  };
  if (is_sae(root)) return root;
  if (is_sae(fs::path(root) / "sae")) return (fs::path(root) / "sae").string();
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(root, error);
       !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_directory() && is_sae(it->path())) return it->path().string();
  }
  return std::nullopt;
}

}  // namespace sae::saectl
