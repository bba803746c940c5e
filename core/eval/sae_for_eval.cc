#include "core/eval/sae_for_eval.h"

#include "core/config/choices.h"
#include "core/sae/saelens_parameters.h"

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace sae::eval {
namespace {

// cfg[key] at the top level, else under "metadata" (SAELens 6); null when neither has it.
const nlohmann::json& CfgValue(const nlohmann::json& cfg, const char* key) {
  static const nlohmann::json kNull;
  if (cfg.contains(key) && !cfg[key].is_null()) return cfg[key];
  if (cfg.contains("metadata") && cfg["metadata"].is_object() && cfg["metadata"].contains(key)) {
    return cfg["metadata"][key];
  }
  return kNull;
}

}  // namespace

SaeTrainingSetup TrainingSetupFromSaeLens(const io::SaeLensSae& sae) {
  SaeTrainingSetup setup;
  const nlohmann::json& cfg = sae.cfg;
  if (const auto& v = CfgValue(cfg, "context_size"); v.is_number_integer()) {
    setup.context_size = v.get<int64_t>();
  }
  if (const auto& v = CfgValue(cfg, "prepend_bos"); v.is_boolean()) {
    setup.prepend_bos = v.get<bool>();
  }
  if (const auto& v = CfgValue(cfg, "model_name"); v.is_string()) {
    setup.model_name = v.get<std::string>();
  }
  const nlohmann::json& kwargs = CfgValue(cfg, "model_from_pretrained_kwargs");
  if (kwargs.is_object()) {
    int on = 0, off = 0;
    bool centering_off = false;
    for (const char* flag :
         {"fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases"}) {
      // from_pretrained's default for a flag the kwargs do not set is true.
      const bool value = kwargs.contains(flag) && kwargs[flag].is_boolean()
                             ? kwargs[flag].get<bool>()
                             : true;
      (value ? on : off) += 1;
      if (!value && std::string(flag) == "center_writing_weights") centering_off = true;
    }
    if (off == 0) {
      setup.processing = model::Processing::kTransformerLens;
    } else if (on == 0) {
      setup.processing = model::Processing::kNone;
    } else if (off == 1 && centering_off) {
      setup.processing = model::Processing::kTransformerLensUncentered;
    } else {
      setup.processing = std::nullopt;
    }
  }
  return setup;
}

absl::StatusOr<SaeForEval> SaeForEvalFromSaeLens(const io::SaeLensSae& sae,
                                                 const std::string& dir) {
  const std::string cfg_path = dir + "/cfg.json";
  SaeForEval out;
  const io::SaeLensMetadata& m = sae.metadata;
  out.options.d_in = sae.W_enc.size(0);
  out.options.d_sae = sae.W_enc.size(1);
  SAE_ASSIGN_OR_RETURN(out.options.architecture, sparse::ParseArchitecture(m.architecture));
  out.options.k = m.k;
  if (out.options.architecture == sparse::Architecture::kTopK &&
      (m.k <= 0 || m.k > out.options.d_sae)) {
    return absl::InvalidArgumentError(absl::StrCat(cfg_path, ": k ", m.k,
                                                   " must be in [1, d_sae = ",
                                                   out.options.d_sae, "]"));
  }
  const nlohmann::json& hook = CfgValue(sae.cfg, "hook_name");
  if (!hook.is_string() || hook.get<std::string>().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cfg_path, ": \"hook_name\" is missing (top level or under \"metadata\")"));
  }
  out.hook_name = hook.get<std::string>();
  if (const auto& v = CfgValue(sae.cfg, "hook_head_index"); v.is_number_integer()) {
    out.hook_head_index = v.get<int>();
  }
  // io::ReadSaeLens refuses what cannot be computed; constant_norm_rescale runs in the SAE's
  // inference forward.
  SAE_ASSIGN_OR_RETURN(out.options.normalize_activations,
                       config::ParseChoice<config::NormalizeActivations>(
                           m.normalize_activations, cfg_path + ": normalize_activations"));
  if (out.options.normalize_activations ==
      config::NormalizeActivations::kExpectedAverageOnlyIn) {
    return absl::UnimplementedError(absl::StrCat(
        cfg_path, ": normalize_activations expected_average_only_in needs its scaling factor, "
                  "which SAELens folds into the weights before saving"));
  }
  out.params = sparse::ImportTensors(sae);
  const nlohmann::json& apply = CfgValue(sae.cfg, "apply_b_dec_to_input");
  if (apply.is_boolean() && !apply.get<bool>()) {
    // encode(x) = x W_enc + b_enc = (x - b_dec) W_enc + (b_enc + b_dec W_enc); gated shifts
    // its gate and magnitude biases the same way, the latter through W_enc * exp(r_mag).
    sparse::SaeParameters& p = out.params;
    if (p.b_enc.defined()) p.b_enc = at::addmv(p.b_enc, p.W_enc.t(), p.b_dec);
    if (p.b_gate.defined()) {
      p.b_gate = at::addmv(p.b_gate, p.W_enc.t(), p.b_dec);
      p.b_mag = at::addmv(p.b_mag, (p.W_enc * p.r_mag.exp()).t(), p.b_dec);
    }
  }
  return out;
}

absl::StatusOr<model::HookPoint> CheckSaeFitsModel(const SaeForEval& sae,
                                                   const model::Gpt2Config& config,
                                                   const std::string& model_label) {
  absl::StatusOr<model::HookPoint> parsed = model::ParseHookPoint(sae.hook_name, config.n_layer);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("the SAE reads hook '", sae.hook_name, "', which model ",
                                     model_label, " (", config.n_layer,
                                     " layers) lacks: ", parsed.status().message()));
  }
  const model::HookPoint hook = *parsed;
  if (hook.kind == model::HookKind::kAttnScores || hook.kind == model::HookKind::kPattern) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SAE reads hook '", sae.hook_name,
        "', an [batch, head, pos, pos] attention map; saectl eval evaluates SAEs on "
        "[batch, pos, ...] activations"));
  }
  const bool has_head = sae.hook_head_index >= 0;
  if (has_head && !hook.is_per_head()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SAE has hook_head_index ", sae.hook_head_index, " but its hook '", sae.hook_name,
        "' has no head dimension (only hook_q/k/v/z do)"));
  }
  if (has_head && sae.hook_head_index >= config.n_head) {
    return absl::OutOfRangeError(absl::StrCat("the SAE's hook_head_index ", sae.hook_head_index,
                                              " is not a head of model ", model_label,
                                              ", which has ", config.n_head, " heads"));
  }
  const int64_t width = hook.ActivationSize(config.dims(), has_head);
  if (sae.options.d_in != width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SAE's d_in ", sae.options.d_in, " does not match the width ", width, " of hook '",
        sae.hook_name, "'", has_head ? absl::StrCat(" head ", sae.hook_head_index) : "",
        " in model ", model_label));
  }
  return hook;
}

at::Tensor HookSite::SaeInput(const at::Tensor& value) const {
  at::Tensor x;
  if (!hook_.is_per_head()) {
    x = value.reshape({-1, value.size(-1)});
  } else if (head_index_ >= 0) {
    x = value.select(2, head_index_).reshape({-1, value.size(-1)});
  } else {
    x = value.reshape({-1, value.size(2) * value.size(3)});
  }
  return x.to(at::kFloat).contiguous();
}

at::Tensor HookSite::Replace(const at::Tensor& value, const at::Tensor& x_hat) const {
  if (hook_.is_per_head() && head_index_ >= 0) {
    at::Tensor out = value.clone();
    out.select(2, head_index_)
        .copy_(x_hat.view({value.size(0), value.size(1), value.size(3)}));
    return out;
  }
  return x_hat.reshape(value.sizes()).to(value.scalar_type());
}

at::Tensor HookSite::Ablate(const at::Tensor& value) const {
  if (hook_.is_per_head() && head_index_ >= 0) {
    at::Tensor out = value.clone();
    out.select(2, head_index_).zero_();
    return out;
  }
  return at::zeros_like(value);
}

}  // namespace sae::eval
