#include "core/model/gpt2_config.h"

#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

namespace sae::model {
namespace {

absl::Status ReadInt(const nlohmann::json& j, const char* key, absl::string_view source, int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 30)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": \"", key, "\" must be a positive integer, got ", it->dump()));
  }
  *out = it->get<int>();
  return absl::OkStatus();
}

}  // namespace

std::string Gpt2Config::ToJson() const {
  nlohmann::json j = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"activation_function", activation_function},
      {"attn_pdrop", 0.1},
      {"bos_token_id", 50256},
      {"eos_token_id", 50256},
      {"embd_pdrop", 0.1},
      {"initializer_range", 0.02},
      {"layer_norm_epsilon", layer_norm_epsilon},
      {"n_ctx", n_positions},
      {"n_embd", n_embd},
      {"n_head", n_head},
      {"n_inner", nullptr},
      {"n_layer", n_layer},
      {"n_positions", n_positions},
      {"resid_pdrop", 0.1},
      {"scale_attn_weights", true},
      {"summary_activation", nullptr},
      {"summary_first_dropout", 0.1},
      {"summary_proj_to_labels", true},
      {"summary_type", "cls_index"},
      {"summary_use_proj", true},
      {"use_cache", true},
      {"vocab_size", vocab_size},
  };
  if (n_inner > 0) j["n_inner"] = n_inner;
  return j.dump(2) + "\n";
}

absl::StatusOr<Gpt2Config> ParseGpt2Config(absl::string_view json_text, absl::string_view source) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  auto type = j.find("model_type");
  if (type != j.end() && type->is_string() && type->get<std::string>() != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(source, ": model_type is '",
                                                   type->get<std::string>(),
                                                   "'; only GPT-2 (\"gpt2\") is supported"));
  }
  Gpt2Config c;
  SAE_RETURN_IF_ERROR(ReadInt(j, "n_layer", source, &c.n_layer));
  SAE_RETURN_IF_ERROR(ReadInt(j, "n_head", source, &c.n_head));
  SAE_RETURN_IF_ERROR(ReadInt(j, "n_embd", source, &c.n_embd));
  SAE_RETURN_IF_ERROR(ReadInt(j, "n_positions", source, &c.n_positions));
  SAE_RETURN_IF_ERROR(ReadInt(j, "vocab_size", source, &c.vocab_size));
  SAE_RETURN_IF_ERROR(ReadInt(j, "n_inner", source, &c.n_inner));
  if (auto eps = j.find("layer_norm_epsilon"); eps != j.end() && !eps->is_null()) {
    if (!eps->is_number() || eps->get<double>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"layer_norm_epsilon\" must be a positive number"));
    }
    c.layer_norm_epsilon = eps->get<double>();
  }
  if (auto act = j.find("activation_function"); act != j.end() && !act->is_null()) {
    if (!act->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"activation_function\" must be a string"));
    }
    c.activation_function = act->get<std::string>();
  }
  if (c.activation_function != "gelu_new" && c.activation_function != "gelu" &&
      c.activation_function != "gelu_pytorch_tanh") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": activation_function '", c.activation_function,
                     "' is not supported (expected gelu_new, gelu_pytorch_tanh or gelu)"));
  }
  if (c.n_embd % c.n_head != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": n_embd ", c.n_embd, " is not divisible by n_head ", c.n_head));
  }
  return c;
}

absl::StatusOr<Gpt2Config> LoadGpt2Config(const std::string& folder) {
  std::string path = folder + "/config.json";
  auto text = ReadFile(path);
  if (!text.ok()) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the model's config.json: ", text.status().message(),
                     " (expected a Hugging Face GPT-2 folder)"));
  }
  return ParseGpt2Config(*text, path);
}

absl::StatusOr<Gpt2Config> Gpt2Preset(absl::string_view name) {
  Gpt2Config c;
  if (name == "gpt2-small" || name == "gpt2") return c;
  if (name == "gpt2-medium") {
    c.n_layer = 24, c.n_embd = 1024, c.n_head = 16;
    return c;
  }
  if (name == "gpt2-large") {
    c.n_layer = 36, c.n_embd = 1280, c.n_head = 20;
    return c;
  }
  if (name == "gpt2-xl") {
    c.n_layer = 48, c.n_embd = 1600, c.n_head = 25;
    return c;
  }
  if (name == "gpt2-tiny") {
    c.n_layer = 2, c.n_embd = 64, c.n_head = 4;
    return c;
  }
  if (name == "gpt2-mini") {  // sized to train in minutes on 2 cores (docs/model-training.md)
    c.n_layer = 4, c.n_embd = 128, c.n_head = 4, c.n_positions = 128;
    return c;
  }
  return absl::NotFoundError(absl::StrCat("unknown model preset '", name,
                                          "' (expected gpt2-small, gpt2-medium, gpt2-large, "
                                          "gpt2-xl, gpt2-tiny or gpt2-mini)"));
}

}  // namespace sae::model
