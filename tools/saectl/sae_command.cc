// saectl sae info | encode: an SAE folder in SAELens's format (this project's exports, SAELens 6
// and older SAELens folders).
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/io/saelens.h"
#include "core/io/tensor_io.h"
#include "core/sae/sae_options.h"
#include "core/sae/saelens_parameters.h"
#include "core/sae/sparse_autoencoder.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"
#include "tools/saectl/command.h"

namespace sae::saectl {
namespace {

using Json = nlohmann::json;

// The architecture and the parameters that define what it computes.
Json ArchitectureJson(const io::SaeLensSae& sae) {
  const io::SaeLensMetadata& m = sae.metadata;
  Json j = {{"architecture", m.architecture},
            {"d_in", sae.W_enc.size(0)},
            {"d_sae", sae.W_enc.size(1)},
            {"apply_b_dec_to_input", true},
            {"normalize_activations", m.normalize_activations}};
  if (m.architecture == "topk") j["k"] = m.k;
  if (sae.threshold.defined()) {
    at::Tensor t = sae.threshold.to(at::kDouble);
    j["threshold"] = {{"min", t.min().item<double>()},
                      {"mean", t.mean().item<double>()},
                      {"max", t.max().item<double>()}};
  }
  return j;
}

// cfg.json's training record: under "metadata" (SAELens 6), else at the top level.
Json TrainingRecord(const Json& cfg, const char* key) {
  if (cfg.contains("metadata") && cfg["metadata"].is_object() && cfg["metadata"].contains(key)) {
    return cfg["metadata"][key];
  }
  return cfg.contains(key) ? cfg[key] : Json();
}

absl::Status RunSaeInfo(const std::string& dir, const std::string& output) {
  SAE_ASSIGN_OR_RETURN(io::SaeLensSae sae, io::ReadSaeLens(dir));
  const io::SaeLensMetadata& m = sae.metadata;
  const int64_t d_in = sae.W_enc.size(0), d_sae = sae.W_enc.size(1);
  Json j = ArchitectureJson(sae);
  j["path"] = dir;
  j["format"] = m.format;
  j["sae_lens_version"] = m.sae_lens_version;
  j["folded_into_weights"] = m.folded;
  j["model_name"] = m.model_name;
  j["hook_name"] = m.hook_name;
  j["hook_layer"] = m.hook_layer;
  j["hook_head_index"] = m.hook_head_index >= 0 ? Json(m.hook_head_index) : Json();
  j["context_size"] = m.context_size;
  j["prepend_bos"] = m.prepend_bos;
  j["processing"] = m.processing;
  j["dataset_path"] = m.dataset_path;
  at::Tensor norms = sae.W_dec.norm(2, {1});
  j["decoder_row_norm"] = {{"min", norms.min().item<double>()},
                           {"max", norms.max().item<double>()}};
  j["b_dec_norm"] = sae.b_dec.norm().item<double>();
  for (const char* key : {"training_tokens", "training_steps"}) {
    Json value = TrainingRecord(sae.cfg, key);
    if (!value.is_null()) j[key] = value;
  }
  if (sae.sparsity.defined()) {
    at::Tensor s = sae.sparsity.to(at::kDouble);  // log10 feature frequency
    j["sparsity"] = {{"mean_log10_feature_sparsity", s.mean().item<double>()},
                     {"median_log10_feature_sparsity", s.median().item<double>()},
                     {"dead_below_1e-8", (s < -8).sum().item<int64_t>()},
                     {"below_1e-6", (s < -6).sum().item<int64_t>()},
                     {"below_1e-5", (s < -5).sum().item<int64_t>()},
                     {"above_1e-1", (s > -1).sum().item<int64_t>()}};
  }
  if (output == "json") {
    std::printf("%s\n", j.dump(2).c_str());
    return absl::OkStatus();
  }
  std::string parameters;
  if (m.architecture == "topk") parameters = absl::StrCat(" (k=", m.k, ")");
  if (sae.threshold.defined()) {
    parameters = absl::StrFormat(" (threshold %.4g .. %.4g, mean %.4g)",
                                 j["threshold"]["min"].get<double>(),
                                 j["threshold"]["max"].get<double>(),
                                 j["threshold"]["mean"].get<double>());
  }
  std::printf("SAE:            %s\n", dir.c_str());
  std::printf("architecture:   %s%s\n", m.architecture.c_str(), parameters.c_str());
  std::printf("cfg.json:       %s%s%s\n",
              m.format == "saelens6" ? "SAELens 6 (nested metadata)" : "flat (SAELens < 6)",
              m.sae_lens_version.empty() ? "" : absl::StrCat(", sae_lens_version ",
                                                             m.sae_lens_version).c_str(),
              m.folded.empty()
                  ? ""
                  : absl::StrCat("; folded into the weights: ", absl::StrJoin(m.folded, ", "))
                        .c_str());
  std::printf(
      "shapes:         W_enc [%lld, %lld]  b_enc [%lld]  W_dec [%lld, %lld]  b_dec [%lld]%s\n",
              (long long)d_in, (long long)d_sae, (long long)d_sae, (long long)d_sae,
              (long long)d_in, (long long)d_in,
              sae.threshold.defined() ? absl::StrCat("  threshold [", d_sae, "]").c_str() : "");
  std::printf("model / hook:   %s  %s (layer %d%s)  processing %s\n", m.model_name.c_str(),
              m.hook_name.c_str(), m.hook_layer,
              m.hook_head_index >= 0 ? absl::StrCat(", head ", m.hook_head_index).c_str() : "",
              m.processing.c_str());
  std::printf("context_size:   %d   prepend_bos: %s   dataset: %s\n", m.context_size,
              m.prepend_bos ? "true" : "false", m.dataset_path.c_str());
  std::printf("decoder norms:  %.4f .. %.4f\n", j["decoder_row_norm"]["min"].get<double>(),
              j["decoder_row_norm"]["max"].get<double>());
  if (sae.sparsity.defined()) {
    const auto& s = j["sparsity"];
    std::printf("sparsity:       mean log10 frequency %.3f (median %.3f)\n",
                s["mean_log10_feature_sparsity"].get<double>(),
                s["median_log10_feature_sparsity"].get<double>());
    std::printf(
        "                %lld dead (< 1e-8), %lld below 1e-6, %lld below 1e-5, %lld above 1e-1 of "
        "%lld\n",
        (long long)s["dead_below_1e-8"].get<int64_t>(), (long long)s["below_1e-6"].get<int64_t>(),
        (long long)s["below_1e-5"].get<int64_t>(), (long long)s["above_1e-1"].get<int64_t>(),
        (long long)d_sae);
  } else {
    std::printf("sparsity:       (no sparsity.safetensors)\n");
  }
  return absl::OkStatus();
}

struct EncodeFlags {
  std::string dir;
  std::string in;
  std::string tensor;
  std::string out;
};

// feature_acts [N,d_sae] and sae_out [N,d_in] of the SAE on x [N,d_in], by the training
// engine's inference encode and decode (every architecture a folder can hold: standard, topk, jumprelu,
// gated; batchtopk folders are jumprelu ones).
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> Encode(const io::SaeLensSae& sae,
                                                         const at::Tensor& x) {
  sparse::SaeOptions options;
  SAE_ASSIGN_OR_RETURN(options.architecture, sparse::ParseArchitecture(sae.metadata.architecture));
  options.d_in = sae.W_enc.size(0);
  options.d_sae = sae.W_enc.size(1);
  options.k = sae.metadata.k;
  SAE_ASSIGN_OR_RETURN(options.normalize_activations,
                       config::ParseChoice<config::NormalizeActivations>(
                           sae.metadata.normalize_activations, "normalize_activations"));
  sparse::SparseAutoencoder engine(options, sparse::ImportTensors(sae));
  return std::make_pair(engine.Encode(x), engine.Reconstruct(x));
}

absl::Status RunSaeEncode(const EncodeFlags& f) {
  SAE_ASSIGN_OR_RETURN(io::SaeLensSae sae, io::ReadSaeLens(f.dir));
  SAE_ASSIGN_OR_RETURN(auto tensors, io::LoadTensors(f.in));
  std::string name = f.tensor;
  if (name.empty()) {
    if (tensors.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--in ", f.in, " holds ", tensors.size(), " tensors; name one with --tensor"));
    }
    name = tensors.begin()->first;
  }
  auto it = tensors.find(name);
  const int64_t d_in = sae.W_enc.size(0);
  if (it == tensors.end() || it->second.dim() < 1 || it->second.size(-1) != d_in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--in ", f.in, ": expected a tensor '", name, "' of shape [..., ", d_in, "]"));
  }
  at::Tensor x = it->second.to(at::kFloat).reshape({-1, d_in}).contiguous();
  SAE_ASSIGN_OR_RETURN(auto outputs, Encode(sae, x));
  SAE_RETURN_IF_ERROR(io::SaveTensors(
      f.out,
      {{"feature_acts", outputs.first.contiguous()}, {"sae_out", outputs.second.contiguous()}},
      {{"architecture", sae.metadata.architecture}}));
  std::printf("encoded %lld activations with %s (%s): feature_acts [%lld, %lld], sae_out "
              "[%lld, %lld] in %s\n",
              (long long)x.size(0), f.dir.c_str(), sae.metadata.architecture.c_str(),
              (long long)x.size(0), (long long)sae.W_enc.size(1), (long long)x.size(0),
              (long long)d_in, f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterSaeCommands(CLI::App& app) {
  CLI::App* sae = app.add_subcommand("sae", "Inspect and run SAEs in SAELens format");
  sae->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>("text");
  CLI::App* info = sae->add_subcommand(
      "info", "Architecture and its parameters, shapes, origin and sparsity of an SAE folder");
  info->add_option("dir", *dir, "SAELens folder (cfg.json, sae_weights.safetensors)")->required();
  info->add_option("-o,--output", *output, "text | json")->check(CLI::IsMember({"text", "json"}));
  info->callback([=] { RunCommand([&] { return RunSaeInfo(*dir, *output); }); });

  auto encode = std::make_shared<EncodeFlags>();
  CLI::App* e = sae->add_subcommand(
      "encode", "Feature activations and reconstructions of activations in a safetensors file");
  e->add_option("dir", encode->dir, "SAELens folder")->required();
  e->add_option("--in", encode->in, "safetensors file with activations [..., d_in]")->required();
  e->add_option("--tensor", encode->tensor, "Tensor to read (default: the file's only one)");
  e->add_option("--out", encode->out, "safetensors file to write (feature_acts, sae_out)")
      ->required();
  e->callback([encode] { RunCommand([&] { return RunSaeEncode(*encode); }); });
}

}  // namespace sae::saectl
