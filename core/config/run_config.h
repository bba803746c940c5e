// The run configuration: what a user writes in run.yaml, parsed, validated and resolved.
//
// Keys are flat and carry the names and defaults of mats_sae_training's
// LanguageModelSAERunnerConfig, so a seed config translates line for line; the keys this
// service adds are documented in docs/config.md (schema.h lists every key for tools and tests).
// SAELens 6's spelling of the same config (hook_name, training_tokens, a nested `sae:` and
// `logger:` block, ...) is read too: saelens_keys.h says what each of its names becomes.
//
// Life of a config:
//   ParseRunConfig / LoadRunConfig   read YAML, check every key's type and range, check the
//                                    combinations that need no model (ValidateRunConfig);
//   ApplyOverrides                   `saectl submit --set key=value`, then validates again;
//   ResolveAgainstModel              derive hook_point_layer, d_in and d_sae from the model's
//                                    dimensions and check what the user wrote against them;
//   ToYaml / ToJson                  ship and store it (ToYaml round-trips exactly).
//
// Every error is absl::InvalidArgumentError whose message starts with where the key was written
// ("run.yaml:7: d_in: ...", "--set lr: ...", or "run.yaml: dataset_path: ..." for a key left at
// its default), then the key, then what is wrong and what is allowed.
//
// Thread safety: the functions here are pure; a RunConfig is a plain value.
#ifndef SAE_CORE_CONFIG_RUN_CONFIG_H_
#define SAE_CORE_CONFIG_RUN_CONFIG_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/choices.h"
#include "core/config/defaults.h"
#include "core/model/hook_point.h"
#include "nlohmann/json.hpp"

namespace sae::config {

// Where a config's keys came from: kept so that validation after parsing (here, in the data
// pipeline, in the trainer) can name the line a user has to fix. Not part of the config's value:
// ToYaml, ToJson and operator== ignore it.
struct RunConfigSource {
  // Line number recorded for keys set by ApplyOverride.
  static constexpr int kOverrideLine = 0;

  // The file name given to ParseRunConfig ("run.yaml", a path, or "<string>").
  std::string name = "<string>";
  // Key -> 1-based line where run.yaml wrote it, or kOverrideLine for `--set key=value`.
  // Keys absent from the map hold their default (or a value derived by ResolveAgainstModel).
  std::map<std::string, int, std::less<>> lines;
  // Things worth telling the user that are not errors (log_to_wandb: true, a key the chosen
  // architecture ignores, ...), each a full sentence that starts with the key's location.
  // Recomputed by ValidateRunConfig; never printed by this library.
  std::vector<std::string> warnings;

  // The hook point as ResolveAgainstModel parsed and checked it against the model, so that the
  // code using a resolved config does not parse hook_point again. Unset before resolution.
  std::optional<model::HookPoint> resolved_hook;

  // Key -> the name it was written under when that is not the key itself: SAELens 6's
  // spelling ("hook_name" for hook_point, "sae.k" for k). Errors name the key as written.
  std::map<std::string, std::string, std::less<>> spellings;
  // Warnings found while reading the file (SAELens 6 keys that have no effect here), kept
  // across ValidateRunConfig, which adds them to `warnings`.
  std::vector<std::string> read_warnings;

  // True when the user wrote `key` (in the file or with --set).
  bool Given(absl::string_view key) const { return lines.find(key) != lines.end(); }
};

// One key of `sweep:` and the values its children take, each as the key's canonical YAML text
// (what ToYaml writes for it, e.g. "0.00008", "topk", "32").
struct SweepDimension {
  std::string key;
  std::vector<std::string> values;

  bool operator==(const SweepDimension& other) const {
    return key == other.key && values == other.values;
  }
};

// Every key of run.yaml. Member initialisers are THE defaults (schema.h and docs/config.md are
// checked against them; the values shared with core/sae are in defaults.h). What each key
// means is written once, in schema.cc's table (docs/config.md is checked against it); comments
// here say only what the table does not. Optional members are null in YAML when absent.
// Units: steps are optimiser steps, tokens are activations (one per token position).
struct RunConfig {
  // ---- Model and hook point ----
  std::string model_name = "gpt2-small";
  std::optional<std::string> model_path;
  std::optional<std::string> tokenizer_path;
  // Weight processing before hooks are read (transformer_lens matches the seed's SAEs).
  Processing processing = Processing::kTransformerLens;
  std::string hook_point = "blocks.0.hook_mlp_out";
  std::optional<int64_t> hook_point_layer;
  std::optional<int64_t> hook_point_head_index;
  std::optional<int64_t> d_in;

  // ---- Data ----
  std::optional<std::string> dataset_path;
  std::optional<bool> is_dataset_tokenized;
  int64_t context_size = 128;
  bool prepend_bos = true;
  bool shuffle = true;
  bool use_cached_activations = false;
  std::optional<std::string> cached_activations_path;

  // ---- SAE ----
  Architecture architecture = defaults::kArchitecture;
  // d_sae = d_in * expansion_factor. Becomes null when run.yaml sets d_sae without writing
  // expansion_factor; writing both is allowed only when they agree.
  std::optional<int64_t> expansion_factor = 4;
  // Number of SAE features. null: d_in * expansion_factor (filled by ResolveAgainstModel).
  std::optional<int64_t> d_sae;
  std::optional<int64_t> k;
  BDecInitMethod b_dec_init_method = defaults::kBDecInitMethod;
  // SAELens 6's activation normalisation (docs/definitions.md); expected_average_only_in
  // estimates its factor over n_batches_for_norm_estimate batches before training.
  NormalizeActivations normalize_activations = NormalizeActivations::kNone;
  // SAELens 6: W_dec's rows start at this norm and W_enc = W_dec^T; null: the seed's init.
  std::optional<double> decoder_init_norm;
  // SAELens 6: the encoder reads x - b_dec (true, the seed's SAE) or x.
  bool apply_b_dec_to_input = true;
  int64_t n_batches_for_norm_estimate = 1000;
  std::optional<std::string> from_pretrained_path;

  // ---- Training ----
  double lr = defaults::kLr;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double l1_coefficient = defaults::kL1Coefficient;
  int64_t l1_warm_up_steps = defaults::kL1WarmUpSteps;
  double aux_k_coefficient = defaults::kAuxKCoefficient;
  LrScheduler lr_scheduler_name = defaults::kLrScheduler;
  // Warm-up steps of the *warmup schedulers (0: none).
  int64_t lr_warm_up_steps = defaults::kLrWarmUpSteps;
  // Floor given to the cosine schedules. null: lr / 10, as the seed passes it. cosineannealing
  // and cosineannealingwarmrestarts end at this learning rate; cosineannealingwarmup reads it
  // as a fraction of lr, as the seed's code does (core/sae/lr_schedule.h).
  std::optional<double> lr_end;
  // SAELens 6: the last lr_decay_steps steps decay linearly to 0 from where the schedule ends;
  // cosineannealingwarmrestarts restarts n_restart_cycles times (core/sae/lr_schedule.h).
  int64_t lr_decay_steps = 0;
  int64_t n_restart_cycles = 1;
  int64_t train_batch_size = defaults::kTrainBatchSize;
  // Training stops when this many activations have been trained on.
  int64_t total_training_tokens = 2'000'000;
  int64_t seed = defaults::kSeed;

  // ---- Architectures of SAELens 6 (batchtopk, jumprelu, gated, matryoshka_batchtopk) ----
  // SAELens 6's names and defaults (sae_lens/saes/*_sae.py); gated uses l1_coefficient and
  // l1_warm_up_steps, batchtopk and matryoshka_batchtopk use k and aux_k_coefficient.
  double topk_threshold_lr = defaults::kTopKThresholdLr;
  std::vector<int64_t> matryoshka_widths;
  double jumprelu_init_threshold = defaults::kJumpReLUInitThreshold;
  double jumprelu_bandwidth = defaults::kJumpReLUBandwidth;
  JumpReLUSparsityLoss jumprelu_sparsity_loss_mode = defaults::kJumpReLUSparsityLoss;
  double jumprelu_tanh_scale = defaults::kJumpReLUTanhScale;
  // jumprelu_sparsity_loss_mode quadratic: the L0 the penalty pulls towards (required there).
  std::optional<double> target_l0;
  bool jumprelu_ste_to_input = defaults::kJumpReLUSteToInput;
  double l0_coefficient = defaults::kL0Coefficient;
  int64_t l0_warm_up_steps = defaults::kL0WarmUpSteps;
  std::optional<double> pre_act_loss_coefficient;

  // ---- Activation buffer ----
  int64_t n_batches_in_buffer = 20;
  int64_t store_batch_size = 32;

  // ---- Dead features and resampling ----
  // standard: ghost gradients for features dead longer than dead_feature_window.
  bool use_ghost_grads = defaults::kUseGhostGrads;
  int64_t feature_sampling_window = defaults::kFeatureSamplingWindow;
  // standard: std::nullopt (no resampling) or kAnthropic.
  std::optional<FeatureSamplingMethod> feature_sampling_method;
  int64_t resample_batches = defaults::kResampleBatches;
  double feature_reinit_scale = defaults::kFeatureReinitScale;
  int64_t dead_feature_window = defaults::kDeadFeatureWindow;
  // anthropic resampling: features whose frequency over the window is below this are resampled.
  double dead_feature_threshold = defaults::kDeadFeatureThreshold;
  int64_t dead_tokens_threshold = defaults::kDeadTokensThreshold;

  // ---- Checkpoints ----
  int64_t n_checkpoints = 0;
  std::string checkpoint_path = "checkpoints";

  // ---- Evaluations (SAELens's names) ----
  int64_t n_eval_batches = 10;
  // null: store_batch_size.
  std::optional<int64_t> eval_batch_size_prompts;
  int64_t eval_every_n_wandb_logs = 100;
  // null: the held-out documents of dataset_path (about eval_held_out_fraction of them, drawn
  // over the whole dataset: data::Dataset::IsHeldOut).
  std::optional<std::string> eval_dataset_path;
  double eval_held_out_fraction = 0.05;

  // ---- Device ----
  // "cpu", "cuda" (each process's own GPU) or "cuda:N".
  std::string device = "cpu";
  // Parameters and activations during training.
  DType dtype = DType::kFloat32;

  // ---- Distributed ----
  int64_t activation_servers = 1;
  int64_t trainers = 1;
  int64_t max_restarts = 3;
  DType wire_dtype = DType::kFloat32;

  // ---- Weights & Biases (accepted; metrics go to Prometheus and the controller) ----
  // true produces a warning: there is no W&B logging in this service. Not the seed's default.
  bool log_to_wandb = false;
  std::string wandb_project = "mats_sae_training_language_model";
  std::optional<std::string> run_name;
  std::optional<std::string> wandb_entity;
  int64_t wandb_log_frequency = 10;

  // ---- Many SAEs in one run (core/config/sweep.h; not keys of the schema's table) ----
  // Hooks of the one model, each trained on by every child of the sweep; empty: hook_point
  // alone. When given, hook_point holds the first of them.
  std::vector<std::string> hook_points;
  // The swept keys in the order written, each with its values (grid over them).
  std::vector<SweepDimension> sweep;

  // Where each key came from and the warnings of the last validation.
  RunConfigSource source;
};

// Equal when every key has the same value; `source` is ignored.
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }

// Parses run.yaml text: a flat mapping of the keys above, or SAELens 6's spelling of them
// (saelens_keys.h); a key written in both spellings must have the same value in both, else the
// error names both lines. `source_name` (a path or a name such as "run.yaml") prefixes every
// error and warning. Missing keys keep their defaults; null (`null`, `~` or nothing) is allowed
// for the optional keys. Integers may be written 4096, 2_000_000 or 2e6 (when exact); numbers,
// booleans and integers must be plain (unquoted) scalars. Calls ValidateRunConfig on the
// result. InvalidArgument on malformed YAML, an unknown or repeated key (with the closest known
// key), a wrong type, an out-of-range value or an impossible combination.
absl::StatusOr<RunConfig> ParseRunConfig(absl::string_view yaml_text,
                                         absl::string_view source_name);

// As ParseRunConfig, with `overrides` ("key=value", as `--set`) applied after the file's keys
// and before the checks across keys, so an override may supply a key the file leaves out.
absl::StatusOr<RunConfig> ParseRunConfig(absl::string_view yaml_text,
                                         absl::string_view source_name,
                                         const std::vector<std::string>& overrides);

// Reads `path` and parses it with `path` as the source name. NotFound etc. when unreadable.
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path);
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path,
                                        const std::vector<std::string>& overrides);

// Sets one key from "key=value" (`saectl submit --set`); the value is read as one YAML scalar
// with the same type and range checks as in a file, and its line is recorded as
// RunConfigSource::kOverrideLine. Does not check combinations: call ValidateRunConfig once all
// overrides are applied, or use ApplyOverrides. On error `config` is unchanged.
absl::Status ApplyOverride(RunConfig& config, absl::string_view assignment);

// Applies each "key=value" in order, then ValidateRunConfig. Stops at the first error.
absl::Status ApplyOverrides(RunConfig& config, const std::vector<std::string>& assignments);

// Checks the combinations that need no model (required keys, architecture-specific keys,
// batch and buffer sizes against each other, ...) and recomputes config.source.warnings.
// Idempotent.
absl::Status ValidateRunConfig(RunConfig& config);

// Resolves the config against a model's dimensions: parses hook_point in a model of
// dims.n_layer layers; derives hook_point_layer, d_in and d_sae when null and checks them when
// given; checks hook_point_head_index < n_head and context_size <= n_ctx and k <= d_sae; then
// ValidateRunConfig. Afterwards hook_point_layer, d_in and d_sae are set. On error `config`
// may have been partly filled.
absl::Status ResolveAgainstModel(RunConfig& config, const sae::model::ModelDims& dims);

// YAML text of every key in schema order, grouped under comments. ParseRunConfig of the result
// gives a config equal to `config` (operator==).
std::string ToYaml(const RunConfig& config);

// A JSON object with every key: numbers, booleans, strings, enum names, null for unset
// optional keys.
nlohmann::json ToJson(const RunConfig& config);

// An InvalidArgument error about `key`, prefixed with where it was written in `config`
// (see the file comment). For checks made outside this library, e.g. is_dataset_tokenized
// against the dataset.
absl::Status ConfigKeyError(const RunConfig& config, absl::string_view key,
                            absl::string_view message);

// "run.yaml:7" for a key written on line 7, "--set" for an override, "run.yaml" otherwise.
// Errors name the key as it was written (RunConfigSource::spellings).
std::string KeyLocation(const RunConfig& config, absl::string_view key);

// Optimiser steps of the run: total_training_tokens / train_batch_size (rounded down).
int64_t TotalTrainingSteps(const RunConfig& config);

// d_sae when set, else d_in * expansion_factor when both are known, else std::nullopt.
std::optional<int64_t> EffectiveDSae(const RunConfig& config);

// lr_end, or lr / 10 when it is null (what the seed passes to its cosine schedules).
double EffectiveLrEnd(const RunConfig& config);

}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_RUN_CONFIG_H_
