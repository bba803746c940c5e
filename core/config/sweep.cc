#include "core/config/sweep.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/codec.h"
#include "core/config/field.h"
#include "core/config/schema.h"
#include "core/util/status.h"

namespace sae::config {
namespace {

constexpr char kStream[] =
    "it changes the activation stream, which every SAE of the run shares (one model forward, "
    "one mixing buffer); train different values in separate runs";
constexpr char kHook[] = "write hook_points: [...] to train on several hooks";
constexpr char kDerived[] = "it is derived from each SAE's hook";
constexpr char kSchedule[] = "the run checkpoints, logs and evaluates every SAE at the same steps";
constexpr char kEvaluation[] = "every SAE of the run is evaluated on the same contexts";
constexpr char kProcesses[] = "it sets up the run's processes, which its SAEs share";
constexpr char kRecord[] = "it names or records the whole run";
constexpr char kSeed[] =
    "it seeds the mixing buffer's shuffle as well as the SAEs' initialisation, so it changes "
    "the activation stream every SAE of the run shares; train different seeds in separate runs";
constexpr char kResampling[] =
    "Anthropic resampling draws its batches from the activation stream the run's SAEs share, "
    "so every SAE resamples at the same steps from the same batches";
constexpr char kPath[] =
    "an SAE to start from per child is not supported; start from a pretrained SAE in a run of "
    "its own";
constexpr char kNormEstimate[] =
    "the activation-scale estimate reads its batches once from the stream the run's SAEs share";
constexpr char kList[] = "a list-valued key cannot be swept";

// Every key of the schema: "" when it may be swept, else why not. Keys missing here (added
// after this table) are refused until someone decides (sweep_test checks the table is complete).
const std::map<std::string, std::string, std::less<>>& SweepRules() {
  static const auto* rules = new std::map<std::string, std::string, std::less<>>{
      // Model and hook point
      {"model_name", kStream},
      {"model_path", kStream},
      {"tokenizer_path", kStream},
      {"processing", kStream},
      {"hook_point", kHook},
      {"hook_point_layer", kDerived},
      {"hook_point_head_index", kStream},
      {"d_in", kDerived},
      // Data
      {"dataset_path", kStream},
      {"is_dataset_tokenized", kStream},
      {"context_size", kStream},
      {"prepend_bos", kStream},
      {"shuffle", kStream},
      {"use_cached_activations", kStream},
      {"cached_activations_path", kStream},
      // SAE
      {"architecture", ""},
      {"expansion_factor", ""},
      {"d_sae", ""},
      {"k", ""},
      {"b_dec_init_method", ""},
      {"decoder_init_norm", ""},
      {"apply_b_dec_to_input", ""},
      {"normalize_activations", ""},
      {"n_batches_for_norm_estimate", kNormEstimate},
      {"from_pretrained_path", kPath},
      // Training
      {"lr", ""},
      {"adam_beta1", ""},
      {"adam_beta2", ""},
      {"l1_coefficient", ""},
      {"l1_warm_up_steps", ""},
      {"aux_k_coefficient", ""},
      {"lr_scheduler_name", ""},
      {"lr_warm_up_steps", ""},
      {"lr_end", ""},
      {"lr_decay_steps", ""},
      {"n_restart_cycles", ""},
      {"train_batch_size", kStream},
      {"total_training_tokens", kStream},
      {"seed", kSeed},
      // SAELens 6 architectures
      {"topk_threshold_lr", ""},
      {"matryoshka_widths", kList},
      {"jumprelu_init_threshold", ""},
      {"jumprelu_bandwidth", ""},
      {"jumprelu_sparsity_loss_mode", ""},
      {"jumprelu_tanh_scale", ""},
      {"jumprelu_ste_to_input", ""},
      {"target_l0", ""},
      {"l0_coefficient", ""},
      {"l0_warm_up_steps", ""},
      {"pre_act_loss_coefficient", ""},
      // Activation buffer
      {"n_batches_in_buffer", kStream},
      {"store_batch_size", kStream},
      // Dead features and resampling
      {"use_ghost_grads", ""},
      {"feature_sampling_window", kResampling},
      {"feature_sampling_method", kResampling},
      {"resample_batches", kResampling},
      {"feature_reinit_scale", ""},
      {"dead_feature_window", ""},
      {"dead_feature_threshold", ""},
      {"dead_tokens_threshold", ""},
      // Checkpoints
      {"n_checkpoints", kSchedule},
      {"checkpoint_path", kSchedule},
      // Evaluations
      {"n_eval_batches", kEvaluation},
      {"eval_batch_size_prompts", kEvaluation},
      {"eval_every_n_wandb_logs", kSchedule},
      {"eval_dataset_path", kEvaluation},
      {"eval_held_out_fraction", kStream},
      // Device and distributed
      {"device", kProcesses},
      {"dtype", kProcesses},
      {"activation_servers", kProcesses},
      {"trainers", kProcesses},
      {"max_restarts", kProcesses},
      {"wire_dtype", kProcesses},
      // Weights & Biases
      {"log_to_wandb", kRecord},
      {"wandb_project", kRecord},
      {"run_name", kRecord},
      {"wandb_entity", kRecord},
      {"wandb_log_frequency", kSchedule},
  };
  return *rules;
}

// The index of each swept dimension for child number `index` of the grid (last fastest).
std::vector<size_t> GridPosition(const std::vector<SweepDimension>& sweep, size_t index) {
  std::vector<size_t> position(sweep.size());
  for (size_t d = sweep.size(); d-- > 0;) {
    position[d] = index % sweep[d].values.size();
    index /= sweep[d].values.size();
  }
  return position;
}

// Sets one swept key of `child` from its canonical text, located at the sweep's line.
absl::Status SetSweptKey(const RunConfig& parent, const std::string& key, const std::string& value,
                         RunConfig& child) {
  const internal::Field* field = internal::FindField(key);
  if (field == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("sweep: unknown key ", key));
  }
  const std::string where = absl::StrCat("sweep.", key);
  auto line = parent.source.lines.find(where);
  child.source.lines[key] =
      line != parent.source.lines.end() ? line->second : RunConfigSource::kOverrideLine;
  child.source.spellings[key] = where;
  internal::ScalarValue scalar;
  scalar.text = value;
  scalar.is_null = value == "null";
  absl::Status parsed = field->parse(scalar, child);
  if (!parsed.ok()) return ConfigKeyError(child, key, parsed.message());
  // As in a file: d_sae written without expansion_factor sizes the SAE alone.
  if (key == "d_sae" && !child.source.Given("expansion_factor")) child.expansion_factor.reset();
  return absl::OkStatus();
}

absl::Status NameChild(absl::Status status, const std::string& name) {
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat(status.message(), " (SAE ", name, " of this run)"));
}

absl::Status CheckDeclaration(const RunConfig& config) {
  std::set<std::string> hooks;
  for (const std::string& hook : config.hook_points) {
    if (!hooks.insert(hook).second) {
      return ConfigKeyError(config, "hook_points",
                            absl::StrCat(hook, " is listed twice; list each hook once"));
    }
  }
  if (!config.hook_points.empty() && !hooks.count(config.hook_point)) {
    return ConfigKeyError(config, "hook_point",
                          absl::StrCat(config.hook_point,
                                       " is not among hook_points; remove hook_point (hook_points "
                                       "lists every hook of the run)"));
  }
  if (config.hook_points.size() > 1 && config.use_cached_activations) {
    return ConfigKeyError(config, "hook_points",
                          "an activation cache holds one hook; with use_cached_activations "
                          "train on one hook (a sweep: over one cached hook works)");
  }
  size_t total = std::max<size_t>(1, config.hook_points.size());
  for (const SweepDimension& dimension : config.sweep) {
    const std::string why = WhyNotSweepable(dimension.key);
    if (!why.empty()) {
      return ConfigKeyError(config, "sweep",
                            absl::StrCat(dimension.key, " cannot be swept: ", why));
    }
    if (dimension.values.empty()) {
      return ConfigKeyError(config, "sweep",
                            absl::StrCat(dimension.key, ": give at least one value"));
    }
    total *= dimension.values.size();
    if (total > static_cast<size_t>(kMaxSaesPerRun)) {
      return ConfigKeyError(config, "sweep",
                            absl::StrCat("declares more than ", kMaxSaesPerRun,
                                         " SAEs; split the sweep into several runs"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool TrainsManySaes(const RunConfig& config) {
  return !config.sweep.empty() || !config.hook_points.empty();
}

std::string WhyNotSweepable(absl::string_view key) {
  auto rule = SweepRules().find(key);
  if (rule == SweepRules().end()) {
    if (FindKey(key) == nullptr) return "it is not a key of run.yaml (docs/config.md)";
    return "it is not among the keys a sweep may vary (docs/config.md, Many SAEs in one run)";
  }
  return rule->second;
}

std::vector<std::string> SweepableKeys() {
  std::vector<std::string> keys;
  for (const KeySpec& spec : RunConfigKeys()) {
    if (WhyNotSweepable(spec.name).empty()) keys.push_back(spec.name);
  }
  return keys;
}

std::string SweepShortName(absl::string_view key) {
  static const auto* names = new std::map<std::string, std::string, std::less<>>{
      {"l1_coefficient", "l1"},        {"aux_k_coefficient", "aux_k"},
      {"l0_coefficient", "l0"},        {"expansion_factor", "expansion"},
      {"architecture", "arch"},        {"lr_scheduler_name", "schedule"},
      {"lr_warm_up_steps", "warm_up"},
  };
  auto it = names->find(key);
  return it != names->end() ? it->second : std::string(key);
}

std::string SweepValueName(absl::string_view key, absl::string_view canonical) {
  const KeySpec* spec = FindKey(key);
  if (spec == nullptr || spec->type != KeyType::kNumber) return std::string(canonical);
  std::optional<double> value = internal::ReadDouble(canonical);
  if (!value) return std::string(canonical);
  char text[64];
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(text, sizeof(text), "%.*g", digits, *value);
    if (std::strtod(text, nullptr) == *value) break;
  }
  return text;
}

std::vector<std::string> RunHookPoints(const RunConfig& config) {
  if (config.hook_points.empty()) return {config.hook_point};
  return config.hook_points;
}

namespace {

// ExpandSaes, resolving each child against `dims` when not null.
absl::StatusOr<std::vector<SaeChild>> ExpandWith(const RunConfig& config,
                                                 const model::ModelDims* dims) {
  if (!TrainsManySaes(config)) return std::vector<SaeChild>{{"", config}};
  SAE_RETURN_IF_ERROR(CheckDeclaration(config));
  size_t grid = 1;
  for (const SweepDimension& dimension : config.sweep) grid *= dimension.values.size();
  std::vector<SaeChild> children;
  for (const std::string& hook : RunHookPoints(config)) {
    for (size_t index = 0; index < grid; ++index) {
      SaeChild child{hook, config};
      RunConfig& c = child.config;
      c.hook_points.clear();
      c.sweep.clear();
      c.source.warnings.clear();
      c.source.resolved_hook.reset();
      c.hook_point = hook;
      if (!config.hook_points.empty()) {
        c.source.lines["hook_point"] = c.source.lines["hook_points"];
        c.source.spellings["hook_point"] = "hook_points";
      }
      const std::vector<size_t> position = GridPosition(config.sweep, index);
      for (size_t d = 0; d < config.sweep.size(); ++d) {
        const SweepDimension& dimension = config.sweep[d];
        const std::string& value = dimension.values[position[d]];
        if (dimension.values.size() > 1) {
          absl::StrAppend(&child.name, "/", SweepShortName(dimension.key), "=",
                          SweepValueName(dimension.key, value));
        }
      }
      for (size_t d = 0; d < config.sweep.size(); ++d) {
        const SweepDimension& dimension = config.sweep[d];
        SAE_RETURN_IF_ERROR(NameChild(
            SetSweptKey(config, dimension.key, dimension.values[position[d]], c), child.name));
      }
      absl::Status valid = dims != nullptr ? ResolveAgainstModel(c, *dims) : ValidateRunConfig(c);
      SAE_RETURN_IF_ERROR(NameChild(valid, child.name));
      children.push_back(std::move(child));
    }
  }
  return children;
}

}  // namespace

absl::StatusOr<std::vector<SaeChild>> ExpandSaes(const RunConfig& config) {
  return ExpandWith(config, nullptr);
}

absl::StatusOr<std::vector<SaeChild>> ExpandSaes(const RunConfig& config,
                                                 const model::ModelDims& dims) {
  return ExpandWith(config, &dims);
}

namespace internal {

absl::Status ValidateManySaes(RunConfig& config, const model::ModelDims* dims) {
  SAE_ASSIGN_OR_RETURN(std::vector<SaeChild> children, ExpandWith(config, dims));
  // Warnings in order of first appearance; those of only some children name them.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> owners;
  for (const SaeChild& child : children) {
    for (const std::string& warning : child.config.source.warnings) {
      auto& names = owners[warning];
      if (names.empty()) order.push_back(warning);
      if (names.empty() || names.back() != child.name) names.push_back(child.name);
    }
  }
  config.source.warnings.clear();
  for (const std::string& warning : order) {
    const std::vector<std::string>& names = owners[warning];
    config.source.warnings.push_back(names.size() == children.size()
                                         ? warning
                                         : absl::StrCat(warning, " (SAE",
                                                        names.size() > 1 ? "s " : " ",
                                                        absl::StrJoin(names, ", "), ")"));
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace sae::config
