#include "core/io/saelens.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::io {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::Status CheckShape(const std::string& file, const char* name, const at::Tensor& t,
                        std::vector<int64_t> expected) {
  if (!t.defined()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": missing tensor '", name, "'"));
  }
  if (t.sizes() != at::IntArrayRef(expected)) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", name, "' has shape ",
                                                   ShapeString(t.sizes()), ", expected ",
                                                   ShapeString(expected)));
  }
  return absl::OkStatus();
}

}  // namespace

nlohmann::json SaeLensConfig(const SaeLensSae& sae) {
  const SaeLensMetadata& m = sae.metadata;
  nlohmann::json cfg = sae.cfg.is_object() ? sae.cfg : nlohmann::json::object();
  cfg["architecture"] = m.architecture;
  cfg["d_in"] = sae.W_enc.size(0);
  cfg["d_sae"] = sae.W_enc.size(1);
  cfg["dtype"] = m.dtype;
  cfg["device"] = m.device;
  cfg["model_name"] = m.model_name;
  cfg["hook_name"] = m.hook_name;
  cfg["hook_layer"] = m.hook_layer;
  cfg["hook_head_index"] =
      m.hook_head_index >= 0 ? nlohmann::json(m.hook_head_index) : nlohmann::json();
  cfg["context_size"] = m.context_size;
  cfg["prepend_bos"] = m.prepend_bos;
  cfg["dataset_path"] = m.dataset_path;
  cfg["apply_b_dec_to_input"] = true;  // the seed encodes x - b_dec
  cfg["normalize_activations"] = "none";
  cfg["finetuning_scaling_factor"] = false;
  cfg["activation_fn_str"] = m.architecture == "topk" ? "topk" : "relu";
  cfg["activation_fn_kwargs"] =
      m.architecture == "topk" ? nlohmann::json{{"k", m.k}} : nlohmann::json::object();
  if (m.architecture == "topk") cfg["k"] = m.k;
  cfg["model_from_pretrained_kwargs"] = {{"center_writing_weights", m.processed_weights},
                                         {"fold_ln", m.processed_weights},
                                         {"center_unembed", m.processed_weights},
                                         {"fold_value_biases", m.processed_weights}};
  cfg["dataset_trust_remote_code"] = false;
  cfg["sae_lens_training_version"] = nullptr;
  cfg["neuronpedia_id"] = nullptr;
  return cfg;
}

absl::Status WriteSaeLens(const std::string& dir, const SaeLensSae& sae) {
  const int64_t D = sae.W_enc.size(0), S = sae.W_enc.size(1);
  const std::string weights = dir + "/sae_weights.safetensors";
  const std::string& a = sae.metadata.architecture;
  NamedTensors tensors = {{"W_enc", sae.W_enc.to(at::kFloat)}};
  std::vector<std::pair<const char*, const at::Tensor*>> vectors = {{"b_enc", &sae.b_enc}};
  if (a == "jumprelu") vectors.emplace_back("threshold", &sae.threshold);
  if (a == "gated") {
    vectors = {{"b_gate", &sae.b_gate}, {"b_mag", &sae.b_mag}, {"r_mag", &sae.r_mag}};
  }
  for (auto [name, t] : vectors) {
    SAE_RETURN_IF_ERROR(CheckShape(weights, name, *t, {S}));
    tensors.emplace_back(name, t->to(at::kFloat));
  }
  SAE_RETURN_IF_ERROR(CheckShape(weights, "W_dec", sae.W_dec, {S, D}));
  SAE_RETURN_IF_ERROR(CheckShape(weights, "b_dec", sae.b_dec, {D}));
  tensors.emplace_back("W_dec", sae.W_dec.to(at::kFloat));
  tensors.emplace_back("b_dec", sae.b_dec.to(at::kFloat));
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));
  SAE_RETURN_IF_ERROR(SaveTensors(weights, tensors, {{"format", "pt"}}));
  if (sae.sparsity.defined()) {
    SAE_RETURN_IF_ERROR(CheckShape(dir + "/sparsity.safetensors", "sparsity", sae.sparsity, {S}));
    SAE_RETURN_IF_ERROR(SaveTensors(dir + "/sparsity.safetensors",
                                    {{"sparsity", sae.sparsity.to(at::kFloat)}},
                                    {{"format", "pt"}}));
  }
  return WriteFileAtomically(dir + "/cfg.json", SaeLensConfig(sae).dump(2) + "\n");
}

absl::StatusOr<SaeLensSae> ReadSaeLens(const std::string& dir) {
  if (!std::filesystem::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat("SAE folder ", dir, " does not exist"));
  }
  const std::string cfg_path = dir + "/cfg.json";
  SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(cfg_path));
  SaeLensSae sae;
  sae.cfg = nlohmann::json::parse(text, nullptr, false);
  if (sae.cfg.is_discarded() || !sae.cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(cfg_path, " is not a JSON object"));
  }
  for (const char* key : {"d_in", "d_sae"}) {
    if (!sae.cfg.contains(key) || !sae.cfg[key].is_number_integer() ||
        sae.cfg[key].get<int64_t>() <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path, ": \"", key, "\" must be a positive integer"));
    }
  }
  const int64_t D = sae.cfg["d_in"].get<int64_t>(), S = sae.cfg["d_sae"].get<int64_t>();
  SaeLensMetadata& m = sae.metadata;
  auto str = [&](const char* key, const std::string& fallback) {
    return sae.cfg.contains(key) && sae.cfg[key].is_string() ? sae.cfg[key].get<std::string>()
                                                             : fallback;
  };
  m.architecture =
      str("architecture", str("activation_fn_str", "relu") == "topk" ? "topk" : "standard");
  if (m.architecture == "topk") {
    if (sae.cfg.contains("k") && sae.cfg["k"].is_number_integer()) {
      m.k = sae.cfg["k"].get<int64_t>();
    } else if (sae.cfg.contains("activation_fn_kwargs") &&
               sae.cfg["activation_fn_kwargs"].contains("k")) {
      m.k = sae.cfg["activation_fn_kwargs"]["k"].get<int64_t>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": a topk SAE needs \"k\""));
    }
  } else if (m.architecture != "standard" && m.architecture != "jumprelu" &&
             m.architecture != "gated") {
    return absl::UnimplementedError(
        absl::StrCat(cfg_path, ": architecture '", m.architecture,
                     "' is not supported (standard, topk, jumprelu or gated)"));
  }
  m.model_name = str("model_name", m.model_name);
  m.hook_name = str("hook_name", "");
  m.dataset_path = str("dataset_path", "");
  m.dtype = str("dtype", "float32");
  m.device = str("device", "cpu");
  if (sae.cfg.contains("hook_layer") && sae.cfg["hook_layer"].is_number_integer()) {
    m.hook_layer = sae.cfg["hook_layer"].get<int>();
  }
  if (sae.cfg.contains("hook_head_index") && sae.cfg["hook_head_index"].is_number_integer()) {
    m.hook_head_index = sae.cfg["hook_head_index"].get<int>();
  }
  if (sae.cfg.contains("context_size") && sae.cfg["context_size"].is_number_integer()) {
    m.context_size = sae.cfg["context_size"].get<int>();
  }
  if (sae.cfg.contains("prepend_bos") && sae.cfg["prepend_bos"].is_boolean()) {
    m.prepend_bos = sae.cfg["prepend_bos"].get<bool>();
  }

  const std::string weights = dir + "/sae_weights.safetensors";
  SAE_ASSIGN_OR_RETURN(auto tensors, LoadTensors(weights));
  sae.W_enc = tensors["W_enc"];
  sae.W_dec = tensors["W_dec"];
  sae.b_dec = tensors["b_dec"];
  SAE_RETURN_IF_ERROR(CheckShape(weights, "W_enc", sae.W_enc, {D, S}));
  SAE_RETURN_IF_ERROR(CheckShape(weights, "W_dec", sae.W_dec, {S, D}));
  SAE_RETURN_IF_ERROR(CheckShape(weights, "b_dec", sae.b_dec, {D}));
  std::vector<std::pair<const char*, at::Tensor*>> vectors = {{"b_enc", &sae.b_enc}};
  if (m.architecture == "jumprelu") {
    if (!tensors.count("threshold") && tensors.count("log_threshold")) {
      tensors["threshold"] = tensors["log_threshold"].to(at::kFloat).exp();  // SAELens < 6.?
    }
    vectors.emplace_back("threshold", &sae.threshold);
  }
  if (m.architecture == "gated") {
    vectors = {{"b_gate", &sae.b_gate}, {"b_mag", &sae.b_mag}, {"r_mag", &sae.r_mag}};
  }
  for (auto [name, t] : vectors) {
    *t = tensors[name];
    SAE_RETURN_IF_ERROR(CheckShape(weights, name, *t, {S}));
    *t = t->to(at::kFloat);
  }
  for (at::Tensor* t : {&sae.W_enc, &sae.W_dec, &sae.b_dec}) *t = t->to(at::kFloat);

  const std::string sparsity = dir + "/sparsity.safetensors";
  if (std::filesystem::exists(sparsity)) {
    SAE_ASSIGN_OR_RETURN(auto s, LoadTensors(sparsity));
    sae.sparsity = s["sparsity"];
    SAE_RETURN_IF_ERROR(CheckShape(sparsity, "sparsity", sae.sparsity, {S}));
  }
  return sae;
}

}  // namespace sae::io
