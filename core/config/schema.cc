#include "core/config/schema.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/config/codec.h"
#include "core/config/field.h"

namespace sae::config {
namespace internal {
namespace {

// ---- Value rules: a range or a pattern, in words and as a check ----

template <typename V>
struct Rule {
  std::string allowed;  // empty: only the type's own constraint
  std::function<absl::Status(const V&)> check;
};

template <typename V>
Rule<V> AtLeast(V minimum) {
  return {absl::StrCat(">= ", Codec<V>::Format(minimum)), [minimum](const V& value) {
            if (value >= minimum) return absl::OkStatus();
            return absl::InvalidArgumentError(absl::StrCat("must be >= ", Codec<V>::Format(minimum),
                                                           ", got ", Codec<V>::Format(value)));
          }};
}

Rule<double> Positive() {
  return {
      "> 0", [](const double& value) {
        if (value > 0) return absl::OkStatus();
        return absl::InvalidArgumentError(absl::StrCat("must be > 0, got ", FormatDouble(value)));
      }};
}

Rule<double> Between(double low, double high) {
  return {absl::StrCat("in [", FormatDouble(low), ", ", FormatDouble(high), "]"),
          [low, high](const double& value) {
            if (value >= low && value <= high) return absl::OkStatus();
            return absl::InvalidArgumentError(absl::StrCat("must be in [", FormatDouble(low), ", ",
                                                           FormatDouble(high), "], got ",
                                                           FormatDouble(value)));
          }};
}

// Adam's betas: 1 would make its bias correction divide by zero.
Rule<double> BelowOne() {
  return {"in [0, 1)", [](const double& value) {
            if (value >= 0 && value < 1) return absl::OkStatus();
            return absl::InvalidArgumentError(
                absl::StrCat("must be in [0, 1), got ", FormatDouble(value)));
          }};
}

Rule<std::string> NonEmpty() {
  return {"non-empty string", [](const std::string& value) {
            if (!value.empty()) return absl::OkStatus();
            return absl::InvalidArgumentError("must not be empty");
          }};
}

Rule<std::string> Device() {
  return {"cpu, cuda or cuda:N", [](const std::string& value) {
            int index = 0;
            if (value == "cpu" || value == "cuda") return absl::OkStatus();
            if (absl::StartsWith(value, "cuda:") &&
                absl::SimpleAtoi(absl::string_view(value).substr(5), &index) && index >= 0) {
              return absl::OkStatus();
            }
            return absl::InvalidArgumentError(
                absl::StrCat("expected cpu, cuda or cuda:N, got '", value, "'"));
          }};
}

Rule<std::string> TrainableHook() {
  return {"TransformerLens hook name",
          [](const std::string& value) { return ParseTrainableHookPoint(value, 0).status(); }};
}

// ---- The table ----

class TableBuilder {
 public:
  void Group(std::string name) {
    group_ = name;
    groups_.push_back(std::move(name));
  }

  template <typename M>
  void Add(std::string name, M RunConfig::*member, KeyOrigin origin, std::string description,
           Rule<typename Unwrapped<M>::Type> rule = {}) {
    using V = typename Unwrapped<M>::Type;
    Field field;
    KeySpec& spec = field.spec;
    spec.name = std::move(name);
    spec.type = Codec<V>::kType;
    spec.nullable = Unwrapped<M>::kNullable;
    spec.default_text = Codec<M>::Format(RunConfig{}.*member);
    spec.allowed = rule.allowed.empty() ? Codec<V>::Allowed()
                   : Codec<V>::kType == KeyType::kString
                       ? rule.allowed
                       : absl::StrCat(Codec<V>::Allowed(), " ", rule.allowed);
    if (spec.nullable) {
      // "true or false" becomes "true, false or null".
      size_t last_or = spec.allowed.rfind(" or ");
      if (last_or != std::string::npos) spec.allowed.replace(last_or, 4, ", ");
      spec.allowed += " or null";
    }
    if constexpr (Codec<V>::kType == KeyType::kChoice) spec.choices = ChoiceNames<V>();
    spec.group = group_;
    spec.description = std::move(description);
    spec.origin = origin;
    auto check = rule.check;
    field.parse = [member, check](const ScalarValue& value, RunConfig& config) {
      M parsed{};
      absl::Status status = Codec<M>::Parse(value, Unwrapped<M>::kNullable, &parsed);
      if (!status.ok()) return status;
      if (check) {
        if constexpr (Unwrapped<M>::kNullable) {
          if (parsed) status = check(*parsed);
        } else {
          status = check(parsed);
        }
        if (!status.ok()) return status;
      }
      config.*member = std::move(parsed);
      return absl::OkStatus();
    };
    field.to_yaml = [member](const RunConfig& config) { return Codec<M>::Format(config.*member); };
    field.to_json = [member](const RunConfig& config) { return Codec<M>::Json(config.*member); };
    field.equal = [member](const RunConfig& a, const RunConfig& b) {
      return a.*member == b.*member;
    };
    fields_.push_back(std::move(field));
  }

  std::vector<Field> TakeFields() { return std::move(fields_); }
  std::vector<std::string> TakeGroups() { return std::move(groups_); }

 private:
  std::string group_;
  std::vector<std::string> groups_;
  std::vector<Field> fields_;
};

struct Table {
  std::vector<Field> fields;
  std::vector<KeySpec> keys;
  std::vector<std::string> groups;
};

Table BuildTable() {
  constexpr KeyOrigin kSeed = KeyOrigin::kSeed;
  constexpr KeyOrigin kOurs = KeyOrigin::kOurs;
  using C = RunConfig;
  TableBuilder t;

  t.Group("Model and hook point");
  t.Add("model_name", &C::model_name, kSeed,
        "TransformerLens name of the model, recorded in exports (cfg.json). Only GPT-2 "
        "architectures run.",
        NonEmpty());
  t.Add("model_path", &C::model_path, kOurs,
        "Hugging Face GPT-2 folder (config.json, model.safetensors) on the workers. Required "
        "unless use_cached_activations.",
        NonEmpty());
  t.Add("tokenizer_path", &C::tokenizer_path, kOurs,
        "Folder with vocab.json + merges.txt (or encoder.json + vocab.bpe); null: model_path.",
        NonEmpty());
  t.Add("processing", &C::processing, kOurs,
        "Weight processing before hooks are read: transformer_lens (fold_ln, "
        "center_writing_weights, center_unembed, fold_value_biases, as the seed), "
        "transformer_lens_uncentered (the same without center_writing_weights: SAELens 6's "
        "default model_from_pretrained_kwargs) or none.");
  t.Add("hook_point", &C::hook_point, kSeed,
        "TransformerLens hook whose activations the SAE reconstructs, e.g. "
        "blocks.2.hook_resid_pre.",
        TrainableHook());
  t.Add("hook_point_layer", &C::hook_point_layer, kSeed,
        "Deepest block the forward runs through; null: derived from hook_point (checked when "
        "given).",
        AtLeast<int64_t>(0));
  t.Add("hook_point_head_index", &C::hook_point_head_index, kSeed,
        "Per-head hooks (attn.hook_q/k/v/z) only: train on this head; null: all heads "
        "flattened.",
        AtLeast<int64_t>(0));
  t.Add("d_in", &C::d_in, kSeed,
        "Width of the activations; null: derived from the model and hook point (checked when "
        "given).",
        AtLeast<int64_t>(1));

  t.Group("Data");
  t.Add("dataset_path", &C::dataset_path, kSeed,
        "Local dataset: text file or folder, JSONL, or pre-tokenised .bin/.npy. Required unless "
        "use_cached_activations.",
        NonEmpty());
  t.Add("is_dataset_tokenized", &C::is_dataset_tokenized, kSeed,
        "null: detected from the dataset; when given, checked against it.");
  t.Add("context_size", &C::context_size, kSeed,
        "Tokens per context fed to the model; at most the model's n_ctx.", AtLeast<int64_t>(1));
  t.Add("prepend_bos", &C::prepend_bos, kSeed,
        "Start every context with BOS (a document overflowing a context continues after a BOS).");
  t.Add("shuffle", &C::shuffle, kOurs,
        "Shuffle activations in the mixing buffer and cached activations; false: FIFO order, "
        "for exactly reproducible runs.");
  t.Add("use_cached_activations", &C::use_cached_activations, kSeed,
        "Train from activations written by saectl cache instead of running the model.");
  t.Add("cached_activations_path", &C::cached_activations_path, kSeed,
        "Folder written by saectl cache. Required when use_cached_activations.", NonEmpty());

  t.Group("SAE");
  t.Add("architecture", &C::architecture, kOurs,
        "standard: the seed's ReLU SAE with L1 penalty; topk: k largest pre-activations per "
        "token, AuxK for dead latents; batchtopk, jumprelu, gated, matryoshka_batchtopk: "
        "SAELens 6's architectures (docs/definitions.md).");
  t.Add("expansion_factor", &C::expansion_factor, kSeed,
        "d_sae = d_in * expansion_factor. Yields to d_sae when only d_sae is written.",
        AtLeast<int64_t>(1));
  t.Add("d_sae", &C::d_sae, kSeed,
        "Number of SAE features; null: d_in * expansion_factor. Both may be written only when "
        "they agree.",
        AtLeast<int64_t>(1));
  t.Add("k", &C::k, kOurs,
        "topk: active latents per token; batchtopk, matryoshka_batchtopk: per token on average "
        "over the batch. Required for those, at most d_sae.",
        AtLeast<int64_t>(1));
  t.Add("b_dec_init_method", &C::b_dec_init_method, kSeed,
        "Decoder bias init: geometric_median or mean of the first storage buffer, or zeros.");
  t.Add("from_pretrained_path", &C::from_pretrained_path, kSeed,
        "SAELens-format SAE folder to start from instead of a fresh init.", NonEmpty());
  t.Add("decoder_init_norm", &C::decoder_init_norm, kOurs,
        "SAELens 6: W_dec's rows start at this norm and W_enc = W_dec^T (SAELens's default is "
        "0.1); null: the seed's init. Decoder rows are renormalised to 1 before every step, so "
        "what lasts is the encoder's start at this scale.",
        Positive());
  t.Add("normalize_activations", &C::normalize_activations, kOurs,
        "SAELens 6's activation scaling: none; expected_average_only_in (times sqrt(d_in) / "
        "mean norm, estimated before training, folded into the exported weights); "
        "constant_norm_rescale (each activation scaled to norm sqrt(d_in), undone on the "
        "output; kept in cfg.json).");
  t.Add("apply_b_dec_to_input", &C::apply_b_dec_to_input, kOurs,
        "SAELens 6: the encoder reads x - b_dec (true, the seed's SAE) or x itself (false). "
        "Exports fold false into the encoder bias and write true: the same function.");
  t.Add("n_batches_for_norm_estimate", &C::n_batches_for_norm_estimate, kOurs,
        "expected_average_only_in: training batches read (not trained on) to estimate the mean "
        "norm, as SAELens 6 does.",
        AtLeast<int64_t>(1));

  t.Group("Training");
  t.Add("lr", &C::lr, kSeed, "Adam learning rate.", Positive());
  t.Add("adam_beta1", &C::adam_beta1, kOurs,
        "Adam's beta1 (SAELens 6's key; the seed always used 0.9).", BelowOne());
  t.Add("adam_beta2", &C::adam_beta2, kOurs,
        "Adam's beta2 (SAELens 6's key; the seed always used 0.999).", BelowOne());
  t.Add("l1_coefficient", &C::l1_coefficient, kSeed,
        "standard, gated: weight of the L1 sparsity penalty.",
        AtLeast(0.0));
  t.Add("l1_warm_up_steps", &C::l1_warm_up_steps, kOurs,
        "standard, gated: the L1 coefficient rises linearly from 0 over this many steps; 0: "
        "none.",
        AtLeast<int64_t>(0));
  t.Add("aux_k_coefficient", &C::aux_k_coefficient, kOurs,
        "topk, batchtopk, matryoshka_batchtopk: weight of the AuxK loss (k_aux = d_in / 2) that "
        "revives dead latents (SAELens 6 calls it aux_loss_coefficient, default 1).",
        AtLeast(0.0));
  t.Add("lr_scheduler_name", &C::lr_scheduler_name, kSeed,
        "Learning-rate schedule of the seed's get_scheduler; formulas under Schedules below.");
  t.Add("lr_warm_up_steps", &C::lr_warm_up_steps, kSeed,
        "Warm-up steps of constantwithwarmup, linearwarmupdecay and cosineannealingwarmup: "
        "factor min(1, (step + 1) / lr_warm_up_steps); 0: none.",
        AtLeast<int64_t>(0));
  t.Add("lr_end", &C::lr_end, kSeed,
        "Floor given to the cosine schedules; null: lr / 10, as the seed passes it. "
        "cosineannealingwarmup reads it as a fraction of lr, as the seed's code does.",
        AtLeast(0.0));
  t.Add("lr_decay_steps", &C::lr_decay_steps, kOurs,
        "SAELens 6: the schedule runs over the other steps and the last lr_decay_steps decay "
        "linearly to 0 from where it ends; 0: none. Not with linearwarmupdecay.",
        AtLeast<int64_t>(0));
  t.Add("n_restart_cycles", &C::n_restart_cycles, kOurs,
        "cosineannealingwarmrestarts: number of cosine cycles (period = steps / "
        "n_restart_cycles), as SAELens 6 and the seed's num_cycles.",
        AtLeast<int64_t>(1));
  t.Add("train_batch_size", &C::train_batch_size, kSeed,
        "Activations per optimiser step, over all trainers together.", AtLeast<int64_t>(1));
  t.Add("total_training_tokens", &C::total_training_tokens, kSeed,
        "Training stops after this many activations; steps = total_training_tokens / "
        "train_batch_size.",
        AtLeast<int64_t>(1));
  t.Add("seed", &C::seed, kSeed, "Seeds initialisation, shuffling and sampling.",
        AtLeast<int64_t>(0));

  // ---- Architectures of SAELens 6: their keys, with SAELens 6's names and defaults ----
  t.Group("SAELens 6 architectures");
  t.Add("topk_threshold_lr", &C::topk_threshold_lr, kOurs,
        "batchtopk, matryoshka_batchtopk: rate of the running average of the smallest kept "
        "activation, the threshold used at inference and exported as JumpReLU's threshold.",
        Between(0.0, 1.0));
  t.Add("matryoshka_widths", &C::matryoshka_widths, kOurs,
        "matryoshka_batchtopk: strictly increasing prefix widths; each prefix of the latents "
        "also reconstructs the input (inner MSE losses). d_sae is appended when the last is "
        "smaller. Required for matryoshka_batchtopk.");
  t.Add("jumprelu_init_threshold", &C::jumprelu_init_threshold, kOurs,
        "jumprelu: initial value of every latent's threshold.", AtLeast(0.0));
  t.Add("jumprelu_bandwidth", &C::jumprelu_bandwidth, kOurs,
        "jumprelu: width of the rectangle kernel of the straight-through estimator.", Positive());
  t.Add("jumprelu_sparsity_loss_mode", &C::jumprelu_sparsity_loss_mode, kOurs,
        "jumprelu: step (L0 through the step function's straight-through estimator), tanh "
        "(sum of tanh(jumprelu_tanh_scale * f * ||W_dec row||)) or quadratic (2 / target_l0 * "
        "(L0 - target_l0)^2 per token, L0 as in step).");
  t.Add("jumprelu_tanh_scale", &C::jumprelu_tanh_scale, kOurs,
        "jumprelu with jumprelu_sparsity_loss_mode tanh: the scale inside tanh.", Positive());
  t.Add("target_l0", &C::target_l0, kOurs,
        "jumprelu with jumprelu_sparsity_loss_mode quadratic: the L0 the penalty pulls towards. "
        "Required there.",
        Positive());
  t.Add("jumprelu_ste_to_input", &C::jumprelu_ste_to_input, kOurs,
        "jumprelu: the straight-through estimator also passes gradient to the pre-activations "
        "(Anthropic); false: to the threshold only (DeepMind).");
  t.Add("l0_coefficient", &C::l0_coefficient, kOurs, "jumprelu: weight of the sparsity penalty.",
        AtLeast(0.0));
  t.Add("l0_warm_up_steps", &C::l0_warm_up_steps, kOurs,
        "jumprelu: l0_coefficient rises linearly from 0 over this many steps; 0: none.",
        AtLeast<int64_t>(0));
  t.Add("pre_act_loss_coefficient", &C::pre_act_loss_coefficient, kOurs,
        "jumprelu: weight of Anthropic's pre-activation loss on dead latents; null: off.",
        AtLeast(0.0));

  t.Group("Activation buffer");
  t.Add("n_batches_in_buffer", &C::n_batches_in_buffer, kSeed,
        "Mixing buffer size in model batches; half of it (n_batches_in_buffer / 2 * "
        "store_batch_size contexts) is refreshed and served at a time.",
        AtLeast<int64_t>(2));
  t.Add("store_batch_size", &C::store_batch_size, kSeed, "Contexts per model forward pass.",
        AtLeast<int64_t>(1));

  t.Group("Dead features and resampling");
  t.Add("use_ghost_grads", &C::use_ghost_grads, kSeed,
        "standard: ghost gradients for features that have not fired for dead_feature_window "
        "steps.");
  t.Add("feature_sampling_window", &C::feature_sampling_window, kSeed,
        "Steps over which feature frequencies are accumulated, logged and reset (and the "
        "anthropic resampling period).",
        AtLeast<int64_t>(1));
  t.Add("feature_sampling_method", &C::feature_sampling_method, kSeed,
        "standard: null (no resampling) or anthropic (resample dead features every "
        "feature_sampling_window steps).");
  t.Add("resample_batches", &C::resample_batches, kSeed,
        "anthropic: batches of inputs whose reconstruction losses choose the new directions.",
        AtLeast<int64_t>(1));
  t.Add("feature_reinit_scale", &C::feature_reinit_scale, kSeed,
        "anthropic: norm of a resampled encoder column relative to the mean living encoder "
        "norm.",
        Positive());
  t.Add("dead_feature_window", &C::dead_feature_window, kSeed,
        "standard: a feature that has not fired for this many steps is dead (ghost grads, "
        "sparsity/dead_features).",
        AtLeast<int64_t>(1));
  t.Add("dead_feature_threshold", &C::dead_feature_threshold, kSeed,
        "anthropic: features firing on fewer than this fraction of tokens in the window are "
        "resampled.",
        Between(0.0, 1.0));
  t.Add("dead_tokens_threshold", &C::dead_tokens_threshold, kOurs,
        "topk: a latent that has not fired for this many tokens is dead (AuxK, "
        "sparsity/dead_features).",
        AtLeast<int64_t>(1));

  t.Group("Checkpoints");
  t.Add("n_checkpoints", &C::n_checkpoints, kSeed,
        "Evenly spaced checkpoints during training; the final SAE is always written.",
        AtLeast<int64_t>(0));
  t.Add("checkpoint_path", &C::checkpoint_path, kSeed,
        "Folder for the checkpoints of saectl train, relative to its --output folder.", NonEmpty());

  t.Group("Evaluations");
  t.Add("n_eval_batches", &C::n_eval_batches, kSeed,
        "Batches of eval_batch_size_prompts contexts per evaluation (CE-loss score, KL, "
        "reconstruction, docs/evals.md); 0: no evaluations.",
        AtLeast<int64_t>(0));
  t.Add("eval_batch_size_prompts", &C::eval_batch_size_prompts, kSeed,
        "Contexts per evaluation forward; null: store_batch_size.", AtLeast<int64_t>(1));
  t.Add("eval_every_n_wandb_logs", &C::eval_every_n_wandb_logs, kSeed,
        "Evaluate every this many metric reports (eval_every_n_wandb_logs * wandb_log_frequency "
        "steps) and at the end; 0: only at the end.",
        AtLeast<int64_t>(0));
  t.Add("eval_dataset_path", &C::eval_dataset_path, kSeed,
        "Dataset of the evaluation contexts (any format dataset_path takes); null: the held-out "
        "documents of dataset_path.",
        NonEmpty());
  t.Add("eval_held_out_fraction", &C::eval_held_out_fraction, kOurs,
        "Fraction of the documents of dataset_path, drawn over the whole dataset by a hash of "
        "where each starts, that training never reads and evaluations use when "
        "eval_dataset_path is null and n_eval_batches > 0.",
        Between(0.0, 0.5));

  t.Group("Device");
  t.Add("device", &C::device, kSeed,
        "Where training runs. This build runs everything on the CPU; cuda and cuda:N are "
        "refused (below).",
        Device());
  t.Add("dtype", &C::dtype, kSeed,
        "Precision of the SAE in training. Only float32 trains; bfloat16 and float16 are "
        "refused (below). torch.float32 etc. are accepted.");

  t.Group("Distributed");
  t.Add("activation_servers", &C::activation_servers, kOurs,
        "Activation servers (model forward + mixing buffer), each on its own shard.",
        AtLeast<int64_t>(1));
  t.Add("trainers", &C::trainers, kOurs,
        "Data-parallel trainers; each takes train_batch_size / trainers activations per step.",
        AtLeast<int64_t>(1));
  t.Add("max_restarts", &C::max_restarts, kOurs,
        "Restarts from the last checkpoint after a lost worker before the run fails.",
        AtLeast<int64_t>(0));
  t.Add("wire_dtype", &C::wire_dtype, kOurs,
        "Element type of activations streamed from activation servers to trainers.");

  t.Group("Weights & Biases");
  t.Add("log_to_wandb", &C::log_to_wandb, kSeed,
        "Accepted for seed configs; true warns that metrics go to Prometheus and the "
        "controller. The seed's default is true.");
  t.Add("wandb_project", &C::wandb_project, kSeed, "Accepted and ignored.");
  t.Add("run_name", &C::run_name, kSeed,
        "Display name of the run; null: saectl submit --name, or the run id.", NonEmpty());
  t.Add("wandb_entity", &C::wandb_entity, kSeed, "Accepted and ignored.");
  t.Add("wandb_log_frequency", &C::wandb_log_frequency, kSeed,
        "Steps between metric reports: saectl train log lines and progress sent to the "
        "controller.",
        AtLeast<int64_t>(1));

  Table table;
  table.fields = t.TakeFields();
  table.groups = t.TakeGroups();
  for (const Field& field : table.fields) table.keys.push_back(field.spec);
  return table;
}

const Table& GetTable() {
  static const Table* const table = new Table(BuildTable());
  return *table;
}

size_t EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

absl::StatusOr<model::HookPoint> ParseTrainableHookPoint(absl::string_view name, int n_layer) {
  absl::StatusOr<model::HookPoint> hook = model::ParseHookPoint(name, n_layer);
  if (!hook.ok()) return absl::InvalidArgumentError(hook.status().message());
  switch (hook->kind) {
    case model::HookKind::kAttnScores:
    case model::HookKind::kPattern:
      return absl::InvalidArgumentError(absl::StrCat(
          name,
          " has shape [batch, head, query, key]: attention patterns are not activations an "
          "SAE can train on; allowed: hooks with a feature dimension such as "
          "hook_resid_pre, hook_mlp_out, mlp.hook_post or attn.hook_z"));
    case model::HookKind::kLn1Scale:
    case model::HookKind::kLn2Scale:
    case model::HookKind::kLnFinalScale:
      return absl::InvalidArgumentError(absl::StrCat(
          name,
          " has one value per token: there is nothing for an SAE to reconstruct; allowed: "
          "hooks with a feature dimension such as hook_resid_pre, hook_mlp_out, "
          "mlp.hook_post or attn.hook_z"));
    default:
      return hook;
  }
}

const std::vector<Field>& Fields() { return GetTable().fields; }

const Field* FindField(absl::string_view name) {
  for (const Field& field : Fields()) {
    if (field.spec.name == name) return &field;
  }
  return nullptr;
}

}  // namespace internal

const std::vector<KeySpec>& RunConfigKeys() { return internal::GetTable().keys; }

const std::vector<std::string>& RunConfigGroups() { return internal::GetTable().groups; }

const KeySpec* FindKey(absl::string_view name) {
  for (const KeySpec& key : RunConfigKeys()) {
    if (key.name == name) return &key;
  }
  return nullptr;
}

std::string ClosestKey(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  std::string best;
  size_t best_distance = std::string::npos;
  for (const KeySpec& key : RunConfigKeys()) {
    size_t distance = internal::EditDistance(lower, key.name);
    if (distance < best_distance) {
      best_distance = distance;
      best = key.name;
    }
  }
  // A typo changes a few characters; anything further is a different key.
  size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_distance <= limit ? best : "";
}

absl::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kString:
      return "string";
    case KeyType::kInteger:
      return "integer";
    case KeyType::kNumber:
      return "number";
    case KeyType::kBoolean:
      return "boolean";
    case KeyType::kChoice:
      return "choice";
    case KeyType::kIntegerList:
      return "list of integers";
  }
  return "unknown";
}

}  // namespace sae::config
