// The run configuration: what a user writes in run.yaml, parsed, validated and resolved.
//
// Keys are flat and carry the names and defaults of mats_sae_training's
// LanguageModelSAERunnerConfig, so a seed config translates line for line; the keys this
// service adds are documented in docs/config.md (schema.h lists every key for tools and tests).
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
#include "core/model/hook_point.h"
#include "nlohmann/json.hpp"

namespace sae::config {

// `architecture`: which SAE is trained.
enum class Architecture {
  kStandard,  // "standard": the seed's ReLU SAE with an L1 penalty (and optional ghost grads)
  kTopK,      // "topk": keep the k largest pre-activations per token, AuxK for dead latents
};

// `lr_scheduler_name`: the seed's learning-rate schedules (REFERENCE.md).
enum class LrScheduler {
  kConstant,                     // "constant"
  kConstantWithWarmup,           // "constantwithwarmup"
  kLinearWarmupDecay,            // "linearwarmupdecay"
  kCosineAnnealing,              // "cosineannealing"
  kCosineAnnealingWarmup,        // "cosineannealingwarmup"
  kCosineAnnealingWarmRestarts,  // "cosineannealingwarmrestarts"
};

// `b_dec_init_method`: how the decoder bias starts.
enum class BDecInitMethod {
  kGeometricMedian,  // "geometric_median" of the first storage buffer (Weiszfeld)
  kMean,             // "mean" of the first storage buffer
  kZeros,            // "zeros"
};

// `feature_sampling_method`: the only non-null value; null (std::nullopt) means no resampling.
enum class FeatureSamplingMethod {
  kAnthropic,  // "anthropic": resample dead features as in "Towards Monosemanticity"
};

// `processing`: weight processing applied to GPT-2 before hooks are read.
enum class Processing {
  kTransformerLens,  // "transformer_lens": fold_ln, center_writing_weights, center_unembed,
                     // fold_value_biases, as HookedTransformer.from_pretrained does
  kNone,             // "none": the Hugging Face weights as they are
};

// `dtype` and `wire_dtype`. YAML accepts the names below and the seed's "torch.float32" forms.
enum class DType {
  kFloat32,   // "float32"
  kBFloat16,  // "bfloat16"
  kFloat16,   // "float16"
};

// The canonical YAML spelling of each enumerator, e.g. ToString(LrScheduler::kConstant) is
// "constant".
absl::string_view ToString(Architecture value);
absl::string_view ToString(LrScheduler value);
absl::string_view ToString(BDecInitMethod value);
absl::string_view ToString(FeatureSamplingMethod value);
absl::string_view ToString(Processing value);
absl::string_view ToString(DType value);

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

  // True when the user wrote `key` (in the file or with --set).
  bool Given(absl::string_view key) const { return lines.find(key) != lines.end(); }
};

// Every key of run.yaml. Member initialisers are THE defaults (schema.h and docs/config.md are
// checked against them). Optional members are null in YAML when absent; what null means is
// documented at each one. Units: steps are optimiser steps, tokens are activations (one per
// token position).
struct RunConfig {
  // ---- Model and hook point ----
  // TransformerLens name of the model; recorded in exports (cfg.json). Only GPT-2 shapes run.
  std::string model_name = "gpt2-small";
  // Hugging Face GPT-2 folder (config.json, model.safetensors) on the worker. Required unless
  // use_cached_activations.
  std::optional<std::string> model_path;
  // Folder with vocab.json + merges.txt (or encoder.json + vocab.bpe). null: model_path.
  std::optional<std::string> tokenizer_path;
  // Weight processing before hooks are read (transformer_lens matches the seed's SAEs).
  Processing processing = Processing::kTransformerLens;
  // TransformerLens hook whose activations the SAE reconstructs.
  std::string hook_point = "blocks.0.hook_mlp_out";
  // Deepest block the forward runs through. null: derived from hook_point.
  std::optional<int64_t> hook_point_layer;
  // For per-head hooks (attn.hook_q/k/v/z): train on this head only. null: all heads,
  // flattened to n_head * d_head.
  std::optional<int64_t> hook_point_head_index;
  // Width of the activations. null: derived from the model and hook point.
  std::optional<int64_t> d_in;

  // ---- Data ----
  // Local dataset: text file or folder, JSONL, or pre-tokenised .bin/.npy (see core/data).
  // Required unless use_cached_activations.
  std::optional<std::string> dataset_path;
  // null: detected from the dataset; when given, checked against it.
  std::optional<bool> is_dataset_tokenized;
  // Tokens per context (row) fed to the model; at most the model's n_ctx.
  int64_t context_size = 128;
  // Every context starts with BOS, and a document overflowing a context continues after a BOS.
  bool prepend_bos = true;
  // Shuffle activations in the mixing buffer (and cached activations); false gives FIFO order
  // for exactly reproducible runs.
  bool shuffle = true;
  // Train from activations written by `saectl cache` instead of running the model.
  bool use_cached_activations = false;
  // The cache folder. Required when use_cached_activations.
  std::optional<std::string> cached_activations_path;

  // ---- SAE ----
  Architecture architecture = Architecture::kStandard;
  // d_sae = d_in * expansion_factor. Becomes null when run.yaml sets d_sae without writing
  // expansion_factor; writing both is allowed only when they agree.
  std::optional<int64_t> expansion_factor = 4;
  // Number of SAE features. null: d_in * expansion_factor (filled by ResolveAgainstModel).
  std::optional<int64_t> d_sae;
  // topk: active latents per token. Required for topk, at most d_sae.
  std::optional<int64_t> k;
  BDecInitMethod b_dec_init_method = BDecInitMethod::kGeometricMedian;
  // A SAELens-format SAE folder to start from instead of a fresh init.
  std::optional<std::string> from_pretrained_path;

  // ---- Training ----
  double lr = 3e-4;
  // standard: weight of the L1 sparsity penalty.
  double l1_coefficient = 1e-3;
  // standard: the L1 coefficient rises linearly from 0 over this many steps (0: no warm-up).
  int64_t l1_warm_up_steps = 0;
  // topk: weight of the AuxK loss that revives dead latents.
  double aux_k_coefficient = 1.0 / 32;
  LrScheduler lr_scheduler_name = LrScheduler::kConstantWithWarmup;
  // Warm-up steps of the *warmup schedulers (0: none).
  int64_t lr_warm_up_steps = 500;
  // Floor given to the cosine schedules. null: lr / 10, as the seed passes it. cosineannealing
  // and cosineannealingwarmrestarts end at this learning rate; cosineannealingwarmup reads it
  // as a fraction of lr, as the seed's code does (core/sae/lr_schedule.h).
  std::optional<double> lr_end;
  // Activations per optimiser step, over all trainers together.
  int64_t train_batch_size = 4096;
  // Training stops when this many activations have been trained on.
  int64_t total_training_tokens = 2'000'000;
  // Seeds initialisation, shuffling and sampling.
  int64_t seed = 42;

  // ---- Activation buffer ----
  // Mixing buffer size in model batches; half of it (n_batches_in_buffer / 2 * store_batch_size
  // contexts) is refreshed and served at a time.
  int64_t n_batches_in_buffer = 20;
  // Contexts per model forward pass.
  int64_t store_batch_size = 32;

  // ---- Dead features and resampling ----
  // standard: ghost gradients for features dead longer than dead_feature_window.
  bool use_ghost_grads = false;
  // Steps over which feature frequencies are accumulated (logged, and the resampling period).
  int64_t feature_sampling_window = 2000;
  // standard: std::nullopt (no resampling) or kAnthropic.
  std::optional<FeatureSamplingMethod> feature_sampling_method;
  // anthropic resampling: batches of inputs whose losses pick the new directions.
  int64_t resample_batches = 32;
  // anthropic resampling: new encoder norm relative to the mean living encoder norm.
  double feature_reinit_scale = 0.2;
  // standard: a feature that has not fired for this many steps is dead (ghost grads).
  int64_t dead_feature_window = 1000;
  // anthropic resampling: features whose frequency over the window is below this are resampled.
  double dead_feature_threshold = 1e-8;
  // topk: a latent that has not fired for this many tokens is dead (AuxK).
  int64_t dead_tokens_threshold = 10'000'000;

  // ---- Checkpoints ----
  // Evenly spaced checkpoints during training (the final SAE is always written).
  int64_t n_checkpoints = 0;
  // Folder for checkpoints of `saectl train`, relative to its --output folder.
  std::string checkpoint_path = "checkpoints";

  // ---- Device ----
  // "cpu", "cuda" (each process's own GPU) or "cuda:N".
  std::string device = "cpu";
  // Parameters and activations during training.
  DType dtype = DType::kFloat32;

  // ---- Distributed ----
  int64_t activation_servers = 1;
  int64_t trainers = 1;
  // Restarts from the last checkpoint after a lost worker before the run fails.
  int64_t max_restarts = 3;
  // Element type of activations on the wire between activation servers and trainers.
  DType wire_dtype = DType::kFloat32;

  // ---- Weights & Biases (accepted; metrics go to Prometheus and the controller) ----
  // true produces a warning: there is no W&B logging in this service. Not the seed's default.
  bool log_to_wandb = false;
  std::string wandb_project = "mats_sae_training_language_model";
  // Display name of the run. null: saectl submit --name, or the controller's run id.
  std::optional<std::string> run_name;
  std::optional<std::string> wandb_entity;
  // Steps between metric reports (log lines of saectl train, progress to the controller).
  int64_t wandb_log_frequency = 10;

  // Where each key came from and the warnings of the last validation.
  RunConfigSource source;
};

// Equal when every key has the same value; `source` is ignored.
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }

// Parses run.yaml text: a flat mapping of the keys above. `source_name` (a path or a name
// such as "run.yaml") prefixes every error and warning. Missing keys keep their defaults; null
// (`null`, `~` or nothing) is allowed for the optional keys. Integers may be written 4096,
// 2_000_000 or 2e6 (when exact); numbers, booleans and integers must be plain (unquoted)
// scalars. Calls ValidateRunConfig on the result. InvalidArgument on malformed YAML, an
// unknown or repeated key (with the closest known key), a wrong type, an out-of-range value or
// an impossible combination.
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
std::string KeyLocation(const RunConfig& config, absl::string_view key);

// Optimiser steps of the run: total_training_tokens / train_batch_size (rounded down).
int64_t TotalTrainingSteps(const RunConfig& config);

// d_sae when set, else d_in * expansion_factor when both are known, else std::nullopt.
std::optional<int64_t> EffectiveDSae(const RunConfig& config);

// lr_end, or lr / 10 when it is null (what the seed passes to its cosine schedules).
double EffectiveLrEnd(const RunConfig& config);

}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_RUN_CONFIG_H_
