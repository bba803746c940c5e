#include "core/eval/eval_results.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sae::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double Ratio(double num, double den) { return den != 0 ? num / den : kNaN; }

at::Tensor AddTensors(const at::Tensor& a, const at::Tensor& b) {
  if (!a.defined()) return b.defined() ? b.clone() : b;
  if (!b.defined()) return a;
  return a + b;
}

nlohmann::json Number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::string Percent(double v) {
  return std::isfinite(v) ? absl::StrFormat("%.1f%%", 100 * v) : std::string("n/a");
}

}  // namespace

void EvalSums::Add(const EvalSums& o) {
  contexts += o.contexts;
  if (context_size == 0) context_size = o.context_size;
  ce_positions += o.ce_positions;
  ce_clean += o.ce_clean;
  ce_sae += o.ce_sae;
  ce_ablation += o.ce_ablation;
  kl_positions += o.kl_positions;
  kl_sae += o.kl_sae;
  kl_ablation += o.kl_ablation;
  tokens += o.tokens;
  squared_error += o.squared_error;
  squared_norm_in += o.squared_norm_in;
  input_sum = AddTensors(input_sum, o.input_sum);
  cossim += o.cossim;
  norm_in += o.norm_in;
  norm_out += o.norm_out;
  norm_ratio += o.norm_ratio;
  squared_norm_out += o.squared_norm_out;
  dot += o.dot;
  l0 += o.l0;
  l1 += o.l1;
  firing_counts = AddTensors(firing_counts, o.firing_counts);
}

EvalResults ResultsFromSums(const EvalSums& s) {
  EvalResults r;
  r.ce_loss_without_sae = Ratio(s.ce_clean, s.ce_positions);
  r.ce_loss_with_sae = Ratio(s.ce_sae, s.ce_positions);
  r.ce_loss_with_ablation = Ratio(s.ce_ablation, s.ce_positions);
  r.ce_loss_score = Ratio(r.ce_loss_with_ablation - r.ce_loss_with_sae,
                          r.ce_loss_with_ablation - r.ce_loss_without_sae);
  r.kl_div_with_sae = Ratio(s.kl_sae, s.kl_positions);
  r.kl_div_with_ablation = Ratio(s.kl_ablation, s.kl_positions);
  r.kl_div_score = Ratio(r.kl_div_with_ablation - r.kl_div_with_sae, r.kl_div_with_ablation);

  const double n = static_cast<double>(s.tokens);
  const int64_t d_in = s.input_sum.defined() ? s.input_sum.numel() : 0;
  r.mse = Ratio(s.squared_error, n * static_cast<double>(d_in));
  // sum ||x - mean||^2 = sum ||x||^2 - ||sum x||^2 / n.
  const double centred =
      s.input_sum.defined() && n > 0
          ? s.squared_norm_in - s.input_sum.pow(2).sum().item<double>() / n
          : 0.0;
  r.explained_variance = 1 - Ratio(s.squared_error, centred);
  r.cossim = Ratio(s.cossim, n);
  r.l2_norm_in = Ratio(s.norm_in, n);
  r.l2_norm_out = Ratio(s.norm_out, n);
  r.l2_ratio = Ratio(s.norm_ratio, n);
  r.relative_reconstruction_bias = Ratio(s.squared_norm_out, s.dot);
  r.l0 = Ratio(s.l0, n);
  r.l1 = Ratio(s.l1, n);
  if (s.firing_counts.defined()) {
    r.d_sae = s.firing_counts.numel();
    at::Tensor counts = s.firing_counts.to(at::kDouble);
    r.feature_density = n > 0 ? counts / n : at::zeros_like(counts);
    r.dead_features = (counts == 0).sum().item<int64_t>();
    r.dense_features = (r.feature_density > kDenseFeatureFrequency).sum().item<int64_t>();
  }
  r.contexts = s.contexts;
  r.context_size = s.context_size;
  r.ce_positions = s.ce_positions;
  r.kl_positions = s.kl_positions;
  r.sae_tokens = s.tokens;
  return r;
}

nlohmann::json ToJson(const EvalResults& r) {
  nlohmann::json j;
  j["model_performance_preservation"] = {
      {"ce_loss_score", Number(r.ce_loss_score)},
      {"ce_loss_with_ablation", Number(r.ce_loss_with_ablation)},
      {"ce_loss_with_sae", Number(r.ce_loss_with_sae)},
      {"ce_loss_without_sae", Number(r.ce_loss_without_sae)}};
  j["model_behavior_preservation"] = {{"kl_div_score", Number(r.kl_div_score)},
                                      {"kl_div_with_ablation", Number(r.kl_div_with_ablation)},
                                      {"kl_div_with_sae", Number(r.kl_div_with_sae)}};
  j["reconstruction_quality"] = {{"explained_variance", Number(r.explained_variance)},
                                 {"mse", Number(r.mse)},
                                 {"cossim", Number(r.cossim)}};
  j["shrinkage"] = {{"l2_norm_in", Number(r.l2_norm_in)},
                    {"l2_norm_out", Number(r.l2_norm_out)},
                    {"l2_ratio", Number(r.l2_ratio)},
                    {"relative_reconstruction_bias", Number(r.relative_reconstruction_bias)}};
  j["sparsity"] = {{"l0", Number(r.l0)},
                   {"l1", Number(r.l1)},
                   {"d_sae", r.d_sae},
                   {"dead_features", r.dead_features},
                   {"dense_features", r.dense_features}};
  j["token_stats"] = {{"total_tokens_eval_reconstruction", r.contexts * r.context_size},
                      {"total_tokens_eval_sparsity_variance", r.sae_tokens},
                      {"contexts", r.contexts},
                      {"context_size", r.context_size},
                      {"ce_loss_positions", r.ce_positions},
                      {"kl_div_positions", r.kl_positions}};
  return j;
}

absl::StatusOr<EvalResults> EvalResultsFromJson(const nlohmann::json& j) {
  EvalResults r;
  absl::Status status;
  auto field = [&](const char* group, const char* name) -> const nlohmann::json* {
    if (!j.is_object() || !j.contains(group) || !j[group].is_object() ||
        !j[group].contains(name)) {
      if (status.ok()) {
        status = absl::InvalidArgumentError(
            absl::StrCat("evaluation results lack ", group, ".", name));
      }
      return nullptr;
    }
    return &j[group][name];
  };
  auto number = [&](const char* group, const char* name, double& out) {
    const nlohmann::json* v = field(group, name);
    if (v == nullptr) return;
    if (v->is_null()) {
      out = kNaN;
    } else if (v->is_number()) {
      out = v->get<double>();
    } else if (status.ok()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("evaluation results: ", group, ".", name, " is not a number"));
    }
  };
  auto count = [&](const char* group, const char* name, int64_t& out) {
    const nlohmann::json* v = field(group, name);
    if (v == nullptr) return;
    if (v->is_number_integer()) {
      out = v->get<int64_t>();
    } else if (status.ok()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("evaluation results: ", group, ".", name, " is not an integer"));
    }
  };
  const char* perf = "model_performance_preservation";
  number(perf, "ce_loss_without_sae", r.ce_loss_without_sae);
  number(perf, "ce_loss_with_sae", r.ce_loss_with_sae);
  number(perf, "ce_loss_with_ablation", r.ce_loss_with_ablation);
  number(perf, "ce_loss_score", r.ce_loss_score);
  const char* behavior = "model_behavior_preservation";
  number(behavior, "kl_div_with_sae", r.kl_div_with_sae);
  number(behavior, "kl_div_with_ablation", r.kl_div_with_ablation);
  number(behavior, "kl_div_score", r.kl_div_score);
  number("reconstruction_quality", "mse", r.mse);
  number("reconstruction_quality", "explained_variance", r.explained_variance);
  number("reconstruction_quality", "cossim", r.cossim);
  number("shrinkage", "l2_norm_in", r.l2_norm_in);
  number("shrinkage", "l2_norm_out", r.l2_norm_out);
  number("shrinkage", "l2_ratio", r.l2_ratio);
  number("shrinkage", "relative_reconstruction_bias", r.relative_reconstruction_bias);
  number("sparsity", "l0", r.l0);
  number("sparsity", "l1", r.l1);
  count("sparsity", "d_sae", r.d_sae);
  count("sparsity", "dead_features", r.dead_features);
  count("sparsity", "dense_features", r.dense_features);
  count("token_stats", "contexts", r.contexts);
  count("token_stats", "context_size", r.context_size);
  count("token_stats", "ce_loss_positions", r.ce_positions);
  count("token_stats", "kl_div_positions", r.kl_positions);
  count("token_stats", "total_tokens_eval_sparsity_variance", r.sae_tokens);
  if (!status.ok()) return status;
  return r;
}

std::string FormatEvalTable(const EvalResults& r) {
  std::string out;
  auto row = [&](const char* name, double v, const std::string& note = "") {
    absl::StrAppend(&out, absl::StrFormat("  %-30s %12.6g", name, v),
                    note.empty() ? "" : absl::StrCat("   ", note), "\n");
  };
  auto count = [&](const char* name, int64_t v, const std::string& note = "") {
    absl::StrAppend(&out, absl::StrFormat("  %-30s %12d", name, v),
                    note.empty() ? "" : absl::StrCat("   ", note), "\n");
  };
  out += "model_performance_preservation\n";
  row("ce_loss_without_sae", r.ce_loss_without_sae);
  row("ce_loss_with_sae", r.ce_loss_with_sae);
  row("ce_loss_with_ablation", r.ce_loss_with_ablation);
  row("ce_loss_score", r.ce_loss_score,
      absl::StrCat("the SAE recovers ", Percent(r.ce_loss_score),
                   " of the CE loss that zero-ablating the hook loses"));
  out += "model_behavior_preservation\n";
  row("kl_div_with_sae", r.kl_div_with_sae);
  row("kl_div_with_ablation", r.kl_div_with_ablation);
  row("kl_div_score", r.kl_div_score,
      absl::StrCat("the SAE removes ", Percent(r.kl_div_score),
                   " of the KL divergence that zero-ablation causes"));
  out += "reconstruction_quality\n";
  row("mse", r.mse);
  row("explained_variance", r.explained_variance,
      absl::StrCat("the reconstruction explains ", Percent(r.explained_variance),
                   " of the activations' variance"));
  row("cossim", r.cossim, "1 = reconstructions point the same way as the inputs");
  out += "shrinkage\n";
  row("l2_norm_in", r.l2_norm_in);
  row("l2_norm_out", r.l2_norm_out);
  row("l2_ratio", r.l2_ratio, "below 1: reconstructions are shorter than inputs");
  row("relative_reconstruction_bias", r.relative_reconstruction_bias,
      "1 = no shrinkage; below 1: the SAE shrinks");
  out += "sparsity\n";
  row("l0", r.l0, "active latents per token");
  row("l1", r.l1);
  count("dead_features", r.dead_features,
        absl::StrCat("of ", r.d_sae, " never fired on the evaluated tokens"));
  count("dense_features", r.dense_features, "fired on more than 10% of the tokens");
  out += "token_stats\n";
  count("contexts", r.contexts, absl::StrCat("of ", r.context_size, " tokens"));
  count("ce_loss_positions", r.ce_positions);
  count("kl_div_positions", r.kl_positions);
  count("sae_tokens", r.sae_tokens);
  return out;
}

}  // namespace sae::eval
