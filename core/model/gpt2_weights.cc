#include "core/model/gpt2_weights.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

namespace sae::model {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// The tensors of one checkpoint, possibly spread over several safetensors files.
class CheckpointReader {
 public:
  static absl::StatusOr<CheckpointReader> Open(const std::string& folder) {
    CheckpointReader reader;
    std::string single = folder + "/model.safetensors";
    std::string index = folder + "/model.safetensors.index.json";
    std::vector<std::string> files;
    if (std::filesystem::exists(single)) {
      files.push_back(single);
    } else if (std::filesystem::exists(index)) {
      SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(index));
      nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(index, ": missing \"weight_map\" object"));
      }
      std::set<std::string> unique;
      for (auto& [key, file] : j["weight_map"].items()) {
        if (file.is_string()) unique.insert(file.get<std::string>());
      }
      for (const std::string& f : unique) files.push_back(folder + "/" + f);
    } else if (std::filesystem::exists(folder + "/pytorch_model.bin")) {
      return absl::FailedPreconditionError(absl::StrCat(
          folder,
          " holds only pytorch_model.bin; convert it to model.safetensors (for example "
          "with Hugging Face's `save_pretrained(..., safe_serialization=True)`)"));
    } else {
      return absl::NotFoundError(absl::StrCat("no model.safetensors in ", folder,
                                              " (expected a Hugging Face GPT-2 folder)"));
    }
    for (const std::string& f : files) {
      SAE_ASSIGN_OR_RETURN(auto file, io::SafetensorsFile::Open(f));
      for (const io::TensorInfo& t : file->tensors()) {
        reader.where_[t.name] = {file.get(), &t};
      }
      reader.files_.push_back(std::move(file));
    }
    return reader;
  }

  bool Has(const std::string& key) const { return where_.count(key) > 0; }

  // Reads `key` (trying "transformer." + key as well) and checks its shape.
  absl::StatusOr<at::Tensor> Read(const std::string& key, std::vector<int64_t> expected) {
    std::string found_key = key;
    auto it = where_.find(key);
    if (it == where_.end()) {
      found_key = "transformer." + key;
      it = where_.find(found_key);
    }
    if (it == where_.end()) {
      return absl::NotFoundError(absl::StrCat("model weights lack tensor '", key,
                                              "' (expected shape ", ShapeString(expected), ")"));
    }
    used_.insert(found_key);
    const auto& [file, info] = it->second;
    if (info->shape != expected) {
      return absl::InvalidArgumentError(absl::StrCat(file->path(), ": tensor '", found_key,
                                                     "' has shape ", ShapeString(info->shape),
                                                     ", expected ", ShapeString(expected)));
    }
    SAE_ASSIGN_OR_RETURN(at::Tensor t, io::ReadTensor(*file, *info));
    if (!t.is_floating_point()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file->path(), ": tensor '", found_key, "' is not floating point"));
    }
    return t.to(at::kFloat);
  }

 private:
  std::vector<std::unique_ptr<io::SafetensorsFile>> files_;
  std::map<std::string, std::pair<const io::SafetensorsFile*, const io::TensorInfo*>> where_;
  std::set<std::string> used_;
};

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> Gpt2Weights::Named() const {
  std::vector<std::pair<std::string, at::Tensor>> out = {{"wte.weight", wte}, {"wpe.weight", wpe}};
  for (size_t l = 0; l < blocks.size(); ++l) {
    const Gpt2BlockWeights& b = blocks[l];
    std::string p = absl::StrCat("h.", l, ".");
    out.insert(out.end(), {{p + "ln_1.weight", b.ln_1_weight},
                           {p + "ln_1.bias", b.ln_1_bias},
                           {p + "attn.c_attn.weight", b.attn_c_attn_weight},
                           {p + "attn.c_attn.bias", b.attn_c_attn_bias},
                           {p + "attn.c_proj.weight", b.attn_c_proj_weight},
                           {p + "attn.c_proj.bias", b.attn_c_proj_bias},
                           {p + "ln_2.weight", b.ln_2_weight},
                           {p + "ln_2.bias", b.ln_2_bias},
                           {p + "mlp.c_fc.weight", b.mlp_c_fc_weight},
                           {p + "mlp.c_fc.bias", b.mlp_c_fc_bias},
                           {p + "mlp.c_proj.weight", b.mlp_c_proj_weight},
                           {p + "mlp.c_proj.bias", b.mlp_c_proj_bias}});
  }
  out.emplace_back("ln_f.weight", ln_f_weight);
  out.emplace_back("ln_f.bias", ln_f_bias);
  if (!tied_lm_head) out.emplace_back("lm_head.weight", lm_head);
  return out;
}

int64_t Gpt2Weights::ParameterCount() const {
  int64_t n = 0;
  for (const auto& [name, t] : Named()) n += t.numel();
  return n;
}

absl::StatusOr<Gpt2Weights> LoadGpt2Weights(const std::string& folder) {
  SAE_ASSIGN_OR_RETURN(Gpt2Config config, LoadGpt2Config(folder));
  return LoadGpt2Weights(folder, config);
}

absl::StatusOr<Gpt2Weights> LoadGpt2Weights(const std::string& folder, const Gpt2Config& config) {
  SAE_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::Open(folder));
  const int64_t D = config.n_embd, V = config.vocab_size, P = config.n_positions,
                M = config.d_mlp();
  Gpt2Weights w;
  w.config = config;
  SAE_ASSIGN_OR_RETURN(w.wte, reader.Read("wte.weight", {V, D}));
  SAE_ASSIGN_OR_RETURN(w.wpe, reader.Read("wpe.weight", {P, D}));
  for (int l = 0; l < config.n_layer; ++l) {
    std::string p = absl::StrCat("h.", l, ".");
    Gpt2BlockWeights b;
    SAE_ASSIGN_OR_RETURN(b.ln_1_weight, reader.Read(p + "ln_1.weight", {D}));
    SAE_ASSIGN_OR_RETURN(b.ln_1_bias, reader.Read(p + "ln_1.bias", {D}));
    SAE_ASSIGN_OR_RETURN(b.attn_c_attn_weight, reader.Read(p + "attn.c_attn.weight", {D, 3 * D}));
    SAE_ASSIGN_OR_RETURN(b.attn_c_attn_bias, reader.Read(p + "attn.c_attn.bias", {3 * D}));
    SAE_ASSIGN_OR_RETURN(b.attn_c_proj_weight, reader.Read(p + "attn.c_proj.weight", {D, D}));
    SAE_ASSIGN_OR_RETURN(b.attn_c_proj_bias, reader.Read(p + "attn.c_proj.bias", {D}));
    SAE_ASSIGN_OR_RETURN(b.ln_2_weight, reader.Read(p + "ln_2.weight", {D}));
    SAE_ASSIGN_OR_RETURN(b.ln_2_bias, reader.Read(p + "ln_2.bias", {D}));
    SAE_ASSIGN_OR_RETURN(b.mlp_c_fc_weight, reader.Read(p + "mlp.c_fc.weight", {D, M}));
    SAE_ASSIGN_OR_RETURN(b.mlp_c_fc_bias, reader.Read(p + "mlp.c_fc.bias", {M}));
    SAE_ASSIGN_OR_RETURN(b.mlp_c_proj_weight, reader.Read(p + "mlp.c_proj.weight", {M, D}));
    SAE_ASSIGN_OR_RETURN(b.mlp_c_proj_bias, reader.Read(p + "mlp.c_proj.bias", {D}));
    w.blocks.push_back(std::move(b));
  }
  SAE_ASSIGN_OR_RETURN(w.ln_f_weight, reader.Read("ln_f.weight", {D}));
  SAE_ASSIGN_OR_RETURN(w.ln_f_bias, reader.Read("ln_f.bias", {D}));
  if (reader.Has("lm_head.weight")) {
    SAE_ASSIGN_OR_RETURN(w.lm_head, reader.Read("lm_head.weight", {V, D}));
    w.tied_lm_head = false;
  } else {
    w.lm_head = w.wte;
    w.tied_lm_head = true;
  }
  return w;
}

Gpt2Weights RandomGpt2Weights(const Gpt2Config& config, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t D = config.n_embd, V = config.vocab_size, P = config.n_positions,
                M = config.d_mlp();
  const double std = 0.02;
  const double proj_std = 0.02 / std::sqrt(2.0 * config.n_layer);
  auto normal = [&](std::vector<int64_t> shape, double s) {
    return at::normal(0.0, s, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  auto zeros = [&](int64_t n) { return at::zeros({n}, at::kFloat); };
  auto ones = [&](int64_t n) { return at::ones({n}, at::kFloat); };
  Gpt2Weights w;
  w.config = config;
  w.wte = normal({V, D}, std);
  w.wpe = normal({P, D}, std);
  for (int l = 0; l < config.n_layer; ++l) {
    Gpt2BlockWeights b;
    b.ln_1_weight = ones(D);
    b.ln_1_bias = zeros(D);
    b.attn_c_attn_weight = normal({D, 3 * D}, std);
    b.attn_c_attn_bias = zeros(3 * D);
    b.attn_c_proj_weight = normal({D, D}, proj_std);
    b.attn_c_proj_bias = zeros(D);
    b.ln_2_weight = ones(D);
    b.ln_2_bias = zeros(D);
    b.mlp_c_fc_weight = normal({D, M}, std);
    b.mlp_c_fc_bias = zeros(M);
    b.mlp_c_proj_weight = normal({M, D}, proj_std);
    b.mlp_c_proj_bias = zeros(D);
    w.blocks.push_back(std::move(b));
  }
  w.ln_f_weight = ones(D);
  w.ln_f_bias = zeros(D);
  w.lm_head = w.wte;
  w.tied_lm_head = true;
  return w;
}

absl::Status SaveGpt2(const Gpt2Weights& weights, const std::string& folder) {
  SAE_RETURN_IF_ERROR(MakeDirectories(folder));
  SAE_RETURN_IF_ERROR(WriteFileAtomically(folder + "/config.json", weights.config.ToJson()));
  io::NamedTensors named;
  for (auto& [name, t] : weights.Named()) named.emplace_back(name, t.to(at::kFloat));
  return io::SaveTensors(folder + "/model.safetensors", named, {{"format", "pt"}});
}

}  // namespace sae::model
