// Checks across keys (ValidateRunConfig) and against a model (ResolveAgainstModel).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/codec.h"
#include "core/config/field.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "core/util/status.h"

namespace sae::config {
namespace {

// How to point at another key inside a message: "hook_point blocks.2.hook_resid_pre (line 3)".
std::string Where(const RunConfig& config, absl::string_view key) {
  auto it = config.source.lines.find(key);
  if (it == config.source.lines.end()) return "(default)";
  if (it->second == RunConfigSource::kOverrideLine) return "(--set)";
  return absl::StrCat("(line ", it->second, ")");
}

void Warn(RunConfig& config, absl::string_view key, absl::string_view message) {
  auto spelling = config.source.spellings.find(key);
  absl::string_view written = spelling != config.source.spellings.end() ? spelling->second : key;
  config.source.warnings.push_back(
      absl::StrCat(KeyLocation(config, key), ": ", written, ": ", message));
}

// Whether any code path here trains on a GPU. None does: the SAE's forward and backward are
// hand-written CPU kernels, and the model, the activation buffer and Adam run on the CPU (the
// project's LibTorch has no CUDA). Set it only together with a tested GPU path.
constexpr bool kGpuTraining = false;

// device and dtype say where and in what precision the SAE trains: refuse what would not happen.
absl::Status CheckDeviceAndDType(const RunConfig& config) {
  if (config.device != "cpu" && !kGpuTraining) {
    return ConfigKeyError(
        config, "device",
        absl::StrCat(config.device,
                     " is not available: this build trains on the CPU only (the model forward, "
                     "the activation buffer and the SAE all run on the CPU; there is no CUDA "
                     "path); write device: cpu"));
  }
  if (config.dtype != DType::kFloat32) {
    return ConfigKeyError(
        config, "dtype",
        absl::StrCat(ToString(config.dtype),
                     " is not supported: the SAE trains in float32 only (parameters, Adam state "
                     "and activations); write dtype: float32. wire_dtype: bfloat16 halves the "
                     "activations sent from activation servers to trainers"));
  }
  return absl::OkStatus();
}

// Keys that only some architectures read: written for another one, they are ignored.
void WarnAboutIgnoredKeys(RunConfig& config) {
  const Architecture a = config.architecture;
  const bool per_token_topk = a == Architecture::kTopK;
  const bool batch_topk =
      a == Architecture::kBatchTopK || a == Architecture::kMatryoshkaBatchTopK;
  const bool l1 = a == Architecture::kStandard || a == Architecture::kGated;
  absl::string_view name = ToString(a);
  std::vector<absl::string_view> ignored;
  if (!l1) ignored.insert(ignored.end(), {"l1_coefficient", "l1_warm_up_steps"});
  if (!per_token_topk && !batch_topk) ignored.insert(ignored.end(), {"k", "aux_k_coefficient"});
  if (!per_token_topk) ignored.push_back("dead_tokens_threshold");
  if (!batch_topk) ignored.push_back("topk_threshold_lr");
  if (a != Architecture::kMatryoshkaBatchTopK) ignored.push_back("matryoshka_widths");
  if (a != Architecture::kJumpReLU) {
    ignored.insert(ignored.end(),
                   {"jumprelu_init_threshold", "jumprelu_bandwidth", "jumprelu_sparsity_loss_mode",
                    "jumprelu_tanh_scale", "jumprelu_ste_to_input", "l0_coefficient", "target_l0",
                    "l0_warm_up_steps", "pre_act_loss_coefficient"});
  }
  for (absl::string_view key : ignored) {
    if (config.source.Given(key)) {
      Warn(config, key,
           absl::StrCat("ignored by architecture ", name, " ", Where(config, "architecture")));
    }
  }
}

absl::Status CheckRequiredPaths(const RunConfig& config) {
  if (config.use_cached_activations) {
    if (!config.cached_activations_path) {
      return ConfigKeyError(config, "cached_activations_path",
                            absl::StrCat("required when use_cached_activations is true ",
                                         Where(config, "use_cached_activations"),
                                         "; give the folder written by saectl cache"));
    }
    return absl::OkStatus();
  }
  if (!config.model_path) {
    return ConfigKeyError(config, "model_path",
                          "required unless use_cached_activations is true; give a Hugging Face "
                          "GPT-2 folder (config.json, model.safetensors)");
  }
  if (!config.dataset_path) {
    return ConfigKeyError(config, "dataset_path",
                          "required unless use_cached_activations is true; give a text file or "
                          "folder, a JSONL file or folder, or a .bin/.npy file of tokens");
  }
  return absl::OkStatus();
}

absl::Status CheckHookPoint(const RunConfig& config) {
  absl::StatusOr<model::HookPoint> hook = internal::ParseTrainableHookPoint(config.hook_point, 0);
  if (!hook.ok()) return ConfigKeyError(config, "hook_point", hook.status().message());
  if (config.hook_point_head_index && !hook->is_per_head()) {
    return ConfigKeyError(
        config, "hook_point_head_index",
        absl::StrCat("only per-head hooks (attn.hook_q, hook_k, hook_v, hook_z) have heads; "
                     "hook_point ",
                     config.hook_point, " ", Where(config, "hook_point"),
                     " is not one; remove hook_point_head_index or set it to null"));
  }
  // The layer of ln_final hooks depends on the model: ResolveAgainstModel checks those.
  bool layer_known = hook->is_block_hook() || hook->kind == model::HookKind::kEmbed ||
                     hook->kind == model::HookKind::kPosEmbed;
  if (config.hook_point_layer && layer_known && *config.hook_point_layer != hook->BlockLayer(0)) {
    return ConfigKeyError(
        config, "hook_point_layer",
        absl::StrCat(*config.hook_point_layer, " contradicts hook_point ", config.hook_point, " ",
                     Where(config, "hook_point"), ", which is in layer ", hook->BlockLayer(0),
                     "; remove hook_point_layer (it is derived) or make them agree"));
  }
  return absl::OkStatus();
}

absl::Status CheckWidth(const RunConfig& config) {
  if (!config.expansion_factor && !config.d_sae) {
    return ConfigKeyError(config, "expansion_factor",
                          "null needs d_sae; give expansion_factor (for example 4) or d_sae");
  }
  if (config.d_in && config.d_sae && config.expansion_factor &&
      *config.d_sae != *config.d_in * *config.expansion_factor) {
    return ConfigKeyError(
        config, "d_sae",
        absl::StrCat(*config.d_sae, " contradicts expansion_factor ", *config.expansion_factor, " ",
                     Where(config, "expansion_factor"), " times d_in ", *config.d_in, " = ",
                     *config.d_in * *config.expansion_factor, "; write only one of them"));
  }
  return absl::OkStatus();
}

// matryoshka_batchtopk: positive, strictly increasing widths, none above d_sae.
absl::Status CheckMatryoshkaWidths(const RunConfig& config) {
  const std::vector<int64_t>& widths = config.matryoshka_widths;
  if (widths.empty()) {
    return ConfigKeyError(config, "matryoshka_widths",
                          absl::StrCat("required by architecture matryoshka_batchtopk ",
                                       Where(config, "architecture"),
                                       "; give the nested widths, for example [128, 512]"));
  }
  for (size_t i = 0; i < widths.size(); ++i) {
    if (widths[i] <= 0 || (i > 0 && widths[i] <= widths[i - 1])) {
      return ConfigKeyError(config, "matryoshka_widths",
                            "must be positive and strictly increasing");
    }
  }
  std::optional<int64_t> d_sae = EffectiveDSae(config);
  if (d_sae && widths.back() > *d_sae) {
    return ConfigKeyError(config, "matryoshka_widths",
                          absl::StrCat("the last width ", widths.back(), " is larger than d_sae ",
                                       *d_sae));
  }
  return absl::OkStatus();
}

absl::Status CheckArchitecture(const RunConfig& config) {
  const Architecture a = config.architecture;
  if (a == Architecture::kStandard) return absl::OkStatus();
  const std::string name(ToString(a));
  std::string where = Where(config, "architecture");
  const bool needs_k = a == Architecture::kTopK || a == Architecture::kBatchTopK ||
                       a == Architecture::kMatryoshkaBatchTopK;
  if (needs_k && !config.k) {
    return ConfigKeyError(config, "k",
                          absl::StrCat("required by architecture ", name, " ", where,
                                       "; give the number of active latents per token, for "
                                       "example 32"));
  }
  std::optional<int64_t> d_sae = EffectiveDSae(config);
  if (needs_k && d_sae && *config.k > *d_sae) {
    return ConfigKeyError(
        config, "k",
        absl::StrCat(*config.k, " is larger than d_sae ", *d_sae, "; allowed: 1 to d_sae"));
  }
  if (a == Architecture::kMatryoshkaBatchTopK) {
    SAE_RETURN_IF_ERROR(CheckMatryoshkaWidths(config));
  }
  if (a == Architecture::kJumpReLU &&
      config.jumprelu_sparsity_loss_mode == JumpReLUSparsityLoss::kQuadratic && !config.target_l0) {
    return ConfigKeyError(config, "jumprelu_sparsity_loss_mode",
                          absl::StrCat("quadratic ", Where(config, "jumprelu_sparsity_loss_mode"),
                                       " pulls L0 towards target_l0, which is not set; add "
                                       "target_l0 (active latents per token, > 0)"));
  }
  if (config.use_ghost_grads) {
    return ConfigKeyError(config, "use_ghost_grads",
                          absl::StrCat("ghost gradients belong to architecture standard, but "
                                       "architecture is ",
                                       name, " ", where,
                                       "; set use_ghost_grads: false"));
  }
  if (config.feature_sampling_method) {
    return ConfigKeyError(config, "feature_sampling_method",
                          absl::StrCat("resampling belongs to architecture standard, but "
                                       "architecture is ",
                                       name, " ", where, "; set feature_sampling_method: null"));
  }
  return absl::OkStatus();
}

absl::Status CheckSchedule(const RunConfig& config) {
  int64_t steps = TotalTrainingSteps(config);
  if (steps < 1) {
    return ConfigKeyError(
        config, "total_training_tokens",
        absl::StrCat(config.total_training_tokens, " is less than train_batch_size ",
                     config.train_batch_size, " ", Where(config, "train_batch_size"),
                     ": not one training step would run"));
  }
  if (config.train_batch_size % config.trainers != 0) {
    return ConfigKeyError(
        config, "train_batch_size",
        absl::StrCat(config.train_batch_size, " is not divisible by trainers ", config.trainers,
                     " ", Where(config, "trainers"),
                     "; each trainer takes train_batch_size / trainers activations per step"));
  }
  if (config.lr_end && *config.lr_end > config.lr) {
    return ConfigKeyError(config, "lr_end",
                          absl::StrCat(internal::FormatDouble(*config.lr_end), " is above lr ",
                                       internal::FormatDouble(config.lr), " ", Where(config, "lr"),
                                       "; allowed: 0 to lr"));
  }
  if (config.lr_decay_steps > 0) {
    const std::string decay = absl::StrCat(config.lr_decay_steps, " ");
    if (config.lr_scheduler_name == LrScheduler::kLinearWarmupDecay) {
      return ConfigKeyError(
          config, "lr_decay_steps",
          absl::StrCat(decay, "cannot follow lr_scheduler_name linearwarmupdecay ",
                       Where(config, "lr_scheduler_name"),
                       ", which already ends at 0; use constantwithwarmup or a cosine schedule "
                       "with lr_decay_steps, or remove lr_decay_steps"));
    }
    if (config.lr_decay_steps >= steps) {
      return ConfigKeyError(
          config, "lr_decay_steps",
          absl::StrCat(decay, "leaves no steps before the decay: the run has ", steps,
                       " steps (total_training_tokens / train_batch_size)"));
    }
    const bool ends_at_lr_end = config.lr_scheduler_name == LrScheduler::kCosineAnnealing ||
                                config.lr_scheduler_name == LrScheduler::kCosineAnnealingWarmup ||
                                config.lr_scheduler_name == LrScheduler::kCosineAnnealingWarmRestarts;
    if (ends_at_lr_end && EffectiveLrEnd(config) == 0) {
      return ConfigKeyError(
          config, "lr_decay_steps",
          absl::StrCat(decay, "would decay from lr_end 0 to 0 ", Where(config, "lr_end"),
                       " (SAELens 6 refuses this too); set lr_end above 0 or remove "
                       "lr_decay_steps"));
    }
  }
  bool decays_after_warm_up = config.lr_scheduler_name == LrScheduler::kLinearWarmupDecay ||
                              config.lr_scheduler_name == LrScheduler::kCosineAnnealingWarmup;
  if (decays_after_warm_up && config.lr_warm_up_steps >= steps) {
    return ConfigKeyError(
        config, "lr_warm_up_steps",
        absl::StrCat(config.lr_warm_up_steps, " leaves no steps to decay over: the run has ", steps,
                     " steps (total_training_tokens / train_batch_size) and ",
                     ToString(config.lr_scheduler_name), " decays after the warm-up"));
  }
  if (config.n_checkpoints > steps) {
    return ConfigKeyError(config, "n_checkpoints",
                          absl::StrCat(config.n_checkpoints, " is more than the run's ", steps,
                                       " steps (total_training_tokens / train_batch_size)"));
  }
  return absl::OkStatus();
}

// The mixing buffer serves half its contents at a time; that half must hold at least one
// trainer's share of a batch.
absl::Status CheckBuffer(const RunConfig& config) {
  int64_t half_buffer =
      config.n_batches_in_buffer / 2 * config.store_batch_size * config.context_size;
  int64_t per_trainer_batch = config.train_batch_size / config.trainers;
  if (half_buffer < per_trainer_batch) {
    return ConfigKeyError(
        config, "n_batches_in_buffer",
        absl::StrCat(config.n_batches_in_buffer, " makes half a buffer ",
                     config.n_batches_in_buffer / 2, " * store_batch_size ",
                     config.store_batch_size, " * context_size ", config.context_size, " = ",
                     half_buffer, " activations, fewer than one trainer's batch of ",
                     per_trainer_batch, "; raise n_batches_in_buffer or store_batch_size"));
  }
  return absl::OkStatus();
}

void CollectWarnings(RunConfig& config) {
  config.source.warnings = config.source.read_warnings;
  if (config.log_to_wandb) {
    Warn(config, "log_to_wandb",
         "this service does not log to Weights & Biases; metrics go to Prometheus (/metrics) "
         "and to the controller (saectl get runs, saectl logs); wandb_project and wandb_entity "
         "are ignored");
  }
  if (config.b_dec_init_method == BDecInitMethod::kZeros &&
      config.source.Given("b_dec_init_method")) {
    Warn(config, "b_dec_init_method",
         "zeros is probably not what you want; geometric_median or mean start the decoder "
         "bias at the data");
  }
  WarnAboutIgnoredKeys(config);
  const bool warms_up = config.lr_scheduler_name == LrScheduler::kConstantWithWarmup ||
                        config.lr_scheduler_name == LrScheduler::kLinearWarmupDecay ||
                        config.lr_scheduler_name == LrScheduler::kCosineAnnealingWarmup;
  if (!warms_up && config.lr_warm_up_steps > 0 && config.source.Given("lr_warm_up_steps")) {
    Warn(config, "lr_warm_up_steps",
         absl::StrCat("ignored by lr_scheduler_name ", ToString(config.lr_scheduler_name), " ",
                      Where(config, "lr_scheduler_name"),
                      ": the seed's schedules warm up only in constantwithwarmup, "
                      "linearwarmupdecay and cosineannealingwarmup (SAELens 6 warms up every "
                      "schedule); use one of those"));
  }
  if (config.n_restart_cycles != 1 && config.source.Given("n_restart_cycles") &&
      config.lr_scheduler_name != LrScheduler::kCosineAnnealingWarmRestarts) {
    Warn(config, "n_restart_cycles",
         absl::StrCat("ignored by lr_scheduler_name ", ToString(config.lr_scheduler_name), " ",
                      Where(config, "lr_scheduler_name"),
                      ": only cosineannealingwarmrestarts restarts"));
  }
  if (config.source.Given("n_batches_for_norm_estimate") &&
      config.normalize_activations != NormalizeActivations::kExpectedAverageOnlyIn) {
    Warn(config, "n_batches_for_norm_estimate",
         "ignored: only normalize_activations expected_average_only_in estimates a norm");
  }
}

}  // namespace

absl::Status ValidateRunConfig(RunConfig& config) {
  // A run of many SAEs is valid when each of them is (sweep.h).
  if (TrainsManySaes(config)) return internal::ValidateManySaes(config, nullptr);
  SAE_RETURN_IF_ERROR(CheckRequiredPaths(config));
  SAE_RETURN_IF_ERROR(CheckDeviceAndDType(config));
  SAE_RETURN_IF_ERROR(CheckHookPoint(config));
  SAE_RETURN_IF_ERROR(CheckWidth(config));
  SAE_RETURN_IF_ERROR(CheckArchitecture(config));
  SAE_RETURN_IF_ERROR(CheckSchedule(config));
  SAE_RETURN_IF_ERROR(CheckBuffer(config));
  CollectWarnings(config);
  return absl::OkStatus();
}

absl::Status ResolveAgainstModel(RunConfig& config, const model::ModelDims& dims) {
  // The derived keys of a run of many SAEs belong to each of them (sweep.h: ExpandSaes).
  if (TrainsManySaes(config)) return internal::ValidateManySaes(config, &dims);
  absl::StatusOr<model::HookPoint> hook =
      internal::ParseTrainableHookPoint(config.hook_point, dims.n_layer);
  if (!hook.ok()) return ConfigKeyError(config, "hook_point", hook.status().message());

  int64_t layer = hook->BlockLayer(dims.n_layer);
  if (config.hook_point_layer && *config.hook_point_layer != layer) {
    return ConfigKeyError(
        config, "hook_point_layer",
        absl::StrCat(*config.hook_point_layer, " contradicts hook_point ", config.hook_point, " ",
                     Where(config, "hook_point"), ", which needs the forward through layer ", layer,
                     "; remove hook_point_layer (it is derived) or make them agree"));
  }
  config.hook_point_layer = layer;
  config.source.resolved_hook = *hook;

  if (config.hook_point_head_index && hook->is_per_head() &&
      *config.hook_point_head_index >= dims.n_head) {
    return ConfigKeyError(
        config, "hook_point_head_index",
        absl::StrCat(*config.hook_point_head_index, " is out of range: the model has ", dims.n_head,
                     " heads; allowed: 0 to ", dims.n_head - 1));
  }

  int64_t width =
      hook->ActivationSize(dims, hook->is_per_head() && config.hook_point_head_index.has_value());
  if (config.d_in && *config.d_in != width) {
    return ConfigKeyError(
        config, "d_in",
        absl::StrCat(*config.d_in, " contradicts hook_point ", config.hook_point, " ",
                     Where(config, "hook_point"), ", whose activations have ", width,
                     " dimensions in this model; remove d_in (it is derived) or write ", width));
  }
  config.d_in = width;

  if (config.context_size > dims.n_ctx) {
    return ConfigKeyError(config, "context_size",
                          absl::StrCat(config.context_size,
                                       " is longer than the model's context "
                                       "of ",
                                       dims.n_ctx, " tokens; allowed: 1 to ", dims.n_ctx));
  }

  SAE_RETURN_IF_ERROR(CheckWidth(config));
  config.d_sae = EffectiveDSae(config);
  return ValidateRunConfig(config);
}

}  // namespace sae::config
