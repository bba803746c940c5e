#include "core/io/saelens.h"

#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::io {
namespace {

using Json = nlohmann::json;

constexpr const char* kProcessingFlags[] = {"fold_ln", "center_writing_weights",
                                            "center_unembed", "fold_value_biases"};

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

// L for hooks of block L ("blocks.L.*"), else 0.
int HookLayer(const std::string& hook_name) {
  std::vector<std::string> parts = absl::StrSplit(hook_name, '.');
  int layer = 0;
  if (parts.size() > 1 && parts[0] == "blocks" && absl::SimpleAtoi(parts[1], &layer)) {
    return layer;
  }
  return 0;
}

// A field of where the SAE came from: under "metadata" (SAELens 6), else at the top level
// (flat form), also under its pre-6 name; null when absent.
class CfgFields {
 public:
  explicit CfgFields(const Json& cfg) : cfg_(cfg) {}

  const Json& Get(const char* key, const char* old_name = nullptr) const {
    static const Json kNull;
    if (cfg_.contains("metadata") && cfg_["metadata"].is_object()) {
      const Json& metadata = cfg_["metadata"];
      if (metadata.contains(key) && !metadata[key].is_null()) return metadata[key];
    }
    if (cfg_.contains(key) && !cfg_[key].is_null()) return cfg_[key];
    if (old_name != nullptr && cfg_.contains(old_name)) return cfg_[old_name];
    return kNull;
  }
  std::string String(const char* key, const std::string& fallback,
                     const char* old_name = nullptr) const {
    const Json& v = Get(key, old_name);
    return v.is_string() ? v.get<std::string>() : fallback;
  }
  template <typename T>
  void Read(const char* key, T* out, const char* old_name = nullptr) const {
    const Json& v = Get(key, old_name);
    if constexpr (std::is_same_v<T, bool>) {
      if (v.is_boolean()) *out = v.get<bool>();
    } else {
      if (v.is_number_integer()) *out = v.get<T>();
    }
  }

 private:
  const Json& cfg_;
};

// The architecture and its parameters, from SAELens 6's fields or the flat form's.
absl::Status ReadArchitecture(const std::string& cfg_path, const Json& cfg, int64_t d_sae,
                              SaeLensMetadata& m) {
  std::string activation = "relu";
  for (const char* key : {"activation_fn_str", "activation_fn"}) {
    if (cfg.contains(key) && cfg[key].is_string()) activation = cfg[key].get<std::string>();
  }
  m.architecture = cfg.contains("architecture") && cfg["architecture"].is_string()
                       ? cfg["architecture"].get<std::string>()
                       : (activation == "topk" ? "topk" : "standard");
  if (m.architecture == "standard" && activation == "topk") m.architecture = "topk";  // pre-6
  if (m.architecture == "topk") {
    if (cfg.contains("k") && cfg["k"].is_number_integer()) {
      m.k = cfg["k"].get<int64_t>();
    } else if (cfg.contains("activation_fn_kwargs") && cfg["activation_fn_kwargs"].is_object() &&
               cfg["activation_fn_kwargs"].contains("k") &&
               cfg["activation_fn_kwargs"]["k"].is_number_integer()) {
      m.k = cfg["activation_fn_kwargs"]["k"].get<int64_t>();
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path, ": a topk SAE needs an integer \"k\""));
    }
    // A k outside [1, d_sae] selects nothing or more latents than there are (torch's topk
    // throws on the first batch); the file is wrong, so say so now.
    if (m.k < 1 || m.k > d_sae) {
      return absl::InvalidArgumentError(
          absl::StrCat(cfg_path, ": k ", m.k, " must be in [1, d_sae = ", d_sae, "]"));
    }
  } else if (m.architecture != "standard" && m.architecture != "jumprelu" &&
             m.architecture != "gated") {
    return absl::UnimplementedError(
        absl::StrCat(cfg_path, ": architecture '", m.architecture,
                     "' is not supported (standard, topk, jumprelu or gated; SAELens saves "
                     "batchtopk SAEs as jumprelu)"));
  }
  if (cfg.contains("normalize_activations")) {
    const Json& norm = cfg["normalize_activations"];
    if (norm.is_string() && norm.get<std::string>() == "constant_norm_rescale") {
      m.normalize_activations = "constant_norm_rescale";
    } else if ((norm.is_string() && norm.get<std::string>() != "none") ||
               (norm.is_boolean() && norm.get<bool>())) {
      return absl::UnimplementedError(absl::StrCat(
          cfg_path, ": normalize_activations ", norm.dump(),
          " is not supported (none or constant_norm_rescale; SAELens folds "
          "expected_average_only_in into the weights before saving)"));
    }
  }
  if (cfg.contains("finetuning_scaling_factor") && cfg["finetuning_scaling_factor"].is_boolean() &&
      cfg["finetuning_scaling_factor"].get<bool>()) {
    return absl::UnimplementedError(
        absl::StrCat(cfg_path, ": finetuning_scaling_factor true is not supported"));
  }
  return absl::OkStatus();
}

// Rewrites the weights so that they compute relu((x - b_dec) W_enc + b_enc) with unscaled
// activations (SaeLensMetadata::folded).
void FoldIntoWeights(SaeLensSae& sae) {
  Json& cfg = sae.cfg;
  if (cfg.contains("apply_b_dec_to_input") && cfg["apply_b_dec_to_input"].is_boolean() &&
      !cfg["apply_b_dec_to_input"].get<bool>()) {
    // x W_enc + b_enc = (x - b_dec) W_enc + (b_enc + b_dec W_enc): the same pre-activations.
    // Gated: the gate reads x W_enc + b_gate, the magnitude x (W_enc * exp(r_mag)) + b_mag.
    if (sae.metadata.architecture == "gated") {
      at::Tensor shift = at::mv(sae.W_enc.t(), sae.b_dec);  // [d_sae]
      sae.b_gate = sae.b_gate + shift;
      sae.b_mag = sae.b_mag + shift * sae.r_mag.exp();
    } else {
      sae.b_enc = at::addmv(sae.b_enc, sae.W_enc.t(), sae.b_dec);
    }
    cfg["apply_b_dec_to_input"] = true;
    sae.metadata.folded.push_back("apply_b_dec_to_input");
  }
  if (sae.metadata.architecture == "topk" && cfg.contains("rescale_acts_by_decoder_norm") &&
      cfg["rescale_acts_by_decoder_norm"].is_boolean() &&
      cfg["rescale_acts_by_decoder_norm"].get<bool>()) {
    // SAELens: h' = h * n (n: decoder row norms) selects and activates, x_hat = (f / n) W_dec.
    at::Tensor norms = sae.W_dec.norm(2, {1});  // [d_sae]
    sae.W_enc = sae.W_enc * norms;
    sae.b_enc = sae.b_enc * norms;
    sae.W_dec = sae.W_dec / norms.unsqueeze(1);
    cfg["rescale_acts_by_decoder_norm"] = false;
    sae.metadata.folded.push_back("rescale_acts_by_decoder_norm");
  }
}

}  // namespace

Json SaeLensConfig(const SaeLensSae& sae) {
  const SaeLensMetadata& m = sae.metadata;
  Json cfg = Json::object();
  cfg["architecture"] = m.architecture;
  cfg["d_in"] = sae.W_enc.size(0);
  cfg["d_sae"] = sae.W_enc.size(1);
  cfg["dtype"] = m.dtype;
  cfg["device"] = m.device;
  cfg["apply_b_dec_to_input"] = true;  // the encoder reads x - b_dec
  cfg["normalize_activations"] = m.normalize_activations;
  // SAELens flattens the heads of hook_z itself when the SAE reads all of them.
  const bool all_heads_of_z = absl::EndsWith(m.hook_name, "hook_z") && m.hook_head_index < 0;
  cfg["reshape_activations"] = all_heads_of_z ? "hook_z" : "none";
  if (m.architecture == "topk") {
    cfg["k"] = m.k;
    cfg["rescale_acts_by_decoder_norm"] = false;
  }
  Json kwargs = Json::object();
  for (const char* flag : kProcessingFlags) {
    kwargs[flag] = m.processing == "transformer_lens" ||
                   (m.processing == "transformer_lens_uncentered" &&
                    std::string(flag) != "center_writing_weights");
  }
  Json metadata = {
      {"sae_lens_version", kSaeLensFormatVersion},
      {"sae_lens_training_version", nullptr},
      {"model_name", m.model_name},
      {"model_class_name", "HookedTransformer"},
      {"hook_name", m.hook_name},
      {"hook_head_index", m.hook_head_index >= 0 ? Json(m.hook_head_index) : Json()},
      {"hook_layer", m.hook_layer},
      {"context_size", m.context_size},
      {"prepend_bos", m.prepend_bos},
      {"seqpos_slice", Json::array({nullptr})},
      {"exclude_special_tokens", false},
      {"model_from_pretrained_kwargs", kwargs},
      {"dataset_path", m.dataset_path},
      {"written_by", "sae-service"},
  };
  if (sae.cfg.is_object()) {
    for (const auto& [key, value] : sae.cfg.items()) metadata[key] = value;
  }
  cfg["metadata"] = metadata;
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
  sae.cfg = Json::parse(text, nullptr, false);
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
  SAE_RETURN_IF_ERROR(ReadArchitecture(cfg_path, sae.cfg, S, m));
  const CfgFields fields(sae.cfg);
  m.format = sae.cfg.contains("metadata") && sae.cfg["metadata"].is_object() ? "saelens6" : "flat";
  m.sae_lens_version = fields.String("sae_lens_version", "");
  m.model_name = fields.String("model_name", m.model_name);
  m.hook_name = fields.String("hook_name", "", "hook_point");
  m.hook_layer = HookLayer(m.hook_name);
  fields.Read("hook_layer", &m.hook_layer, "hook_point_layer");
  fields.Read("hook_head_index", &m.hook_head_index, "hook_point_head_index");
  fields.Read("context_size", &m.context_size);
  fields.Read("prepend_bos", &m.prepend_bos);
  m.dataset_path = fields.String("dataset_path", "");
  m.dtype = fields.String("dtype", "float32");
  m.device = fields.String("device", "cpu");
  const Json& kwargs = fields.Get("model_from_pretrained_kwargs");
  if (kwargs.is_object()) {
    std::vector<std::string> off;
    for (const char* flag : kProcessingFlags) {
      if (kwargs.contains(flag) && kwargs[flag].is_boolean() && !kwargs[flag].get<bool>()) {
        off.push_back(flag);
      }
    }
    if (off.size() == 1 && off[0] == "center_writing_weights") {
      m.processing = "transformer_lens_uncentered";
    } else if (!off.empty()) {
      m.processing = "none";
    }
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
  FoldIntoWeights(sae);

  const std::string sparsity = dir + "/sparsity.safetensors";
  if (std::filesystem::exists(sparsity)) {
    SAE_ASSIGN_OR_RETURN(auto s, LoadTensors(sparsity));
    sae.sparsity = s["sparsity"];
    SAE_RETURN_IF_ERROR(CheckShape(sparsity, "sparsity", sae.sparsity, {S}));
  }
  return sae;
}

}  // namespace sae::io
