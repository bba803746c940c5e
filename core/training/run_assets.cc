#include "core/training/run_assets.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/sae/saelens_parameters.h"
#include "core/util/status.h"

namespace sae::training {
namespace {

// ResolveRunConfig, returning the model's config it read so that LoadRunAssets hands it to the
// model's Load: each process reads config.json once.
absl::StatusOr<model::Gpt2Config> ReadModelConfigAndResolve(config::RunConfig& config) {
  if (!config.model_path) {
    return config::ConfigKeyError(
        config, "model_path",
        "is required: a Hugging Face GPT-2 folder (config.json + model.safetensors); "
        "`saectl model init --preset gpt2-small --out DIR` makes one with random weights");
  }
  auto model_config = model::LoadGpt2Config(*config.model_path);
  if (!model_config.ok()) {
    return config::ConfigKeyError(config, "model_path", model_config.status().message());
  }
  SAE_RETURN_IF_ERROR(config::ResolveAgainstModel(config, model_config->dims()));
  return *std::move(model_config);
}

}  // namespace

absl::Status ResolveRunConfig(config::RunConfig& config) {
  return ReadModelConfigAndResolve(config).status();
}

std::string TokenizerFolderFor(const config::RunConfig& config) {
  if (config.tokenizer_path) return *config.tokenizer_path;
  if (config.model_path) {
    for (const char* f : {"/vocab.json", "/encoder.json"}) {
      if (std::filesystem::exists(*config.model_path + f)) return *config.model_path;
    }
  }
  return tokenizer::DefaultTokenizerDir();
}

double HeldOutFraction(const config::RunConfig& config) {
  return config.n_eval_batches > 0 && !config.eval_dataset_path ? config.eval_held_out_fraction
                                                                : 0.0;
}

absl::StatusOr<RunAssets> LoadRunAssets(config::RunConfig& config, bool with_model) {
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config model_config, ReadModelConfigAndResolve(config));
  if (!config.source.resolved_hook) {  // sweep: or hook_points: (core/config/sweep.h)
    return config::ConfigKeyError(
        config, config.hook_points.empty() ? "sweep" : "hook_points",
        "this run declares several SAEs; load the assets of one of them (config::ExpandSaes)");
  }
  RunAssets assets;
  assets.hook = *config.source.resolved_hook;
  if (with_model) {
    model::ModelOptions options;
    options.processing = config.processing;
    options.dtype = config.dtype == config::DType::kBFloat16 ? at::kBFloat16 : at::kFloat;
    auto model = model::Gpt2Model::Load(*config.model_path, model_config, options);
    if (!model.ok()) return config::ConfigKeyError(config, "model_path", model.status().message());
    assets.model = std::move(model).value();
  }
  if (config.use_cached_activations) return assets;

  absl::Status tokenizer_status;
  auto tok = tokenizer::Gpt2Tokenizer::Load(TokenizerFolderFor(config));
  if (tok.ok()) {
    assets.tokenizer = std::move(tok).value();
  } else {
    tokenizer_status = tok.status();
  }
  data::DatasetOptions options;
  options.dataset_path = config.dataset_path.value_or("");
  options.is_dataset_tokenized = config.is_dataset_tokenized;
  options.context_size = config.context_size;
  options.prepend_bos = config.prepend_bos;
  options.held_out_fraction = HeldOutFraction(config);
  if (assets.model) options.vocab_size = assets.model->config().vocab_size;
  auto dataset = data::Dataset::Open(options, assets.tokenizer.get());
  if (!dataset.ok()) {
    std::string message(dataset.status().message());
    if (!tokenizer_status.ok()) {
      absl::StrAppend(&message, " (the tokenizer could not be loaded: ", tokenizer_status.message(),
                      "; set tokenizer_path or run scripts/fetch-assets.sh)");
    }
    return config::ConfigKeyError(config, "dataset_path", message);
  }
  assets.dataset = std::move(dataset).value();
  return assets;
}

absl::StatusOr<std::optional<sparse::SaeParameters>> PretrainedSaeFor(
    const config::RunConfig& config, const sparse::TrainerOptions& options) {
  if (!config.from_pretrained_path) return std::nullopt;
  absl::StatusOr<io::SaeLensSae> sae = io::ReadSaeLens(*config.from_pretrained_path);
  if (!sae.ok()) {
    return config::ConfigKeyError(config, "from_pretrained_path", sae.status().message());
  }
  if (sae->W_enc.size(0) != options.sae.d_in || sae->W_enc.size(1) != options.sae.d_sae) {
    return config::ConfigKeyError(
        config, "from_pretrained_path",
        absl::StrCat("holds an SAE of d_in ", sae->W_enc.size(0), " and d_sae ", sae->W_enc.size(1),
                     ", the run needs ", options.sae.d_in, " and ", options.sae.d_sae));
  }
  const std::string wanted = sparse::SaeLensArchitecture(options.sae.architecture);
  if (sae->metadata.architecture != wanted) {
    return config::ConfigKeyError(
        config, "from_pretrained_path",
        absl::StrCat("holds a ", sae->metadata.architecture, " SAE; architecture ",
                     config::ToString(options.sae.architecture), " starts from a ", wanted,
                     " SAE"));
  }
  sparse::SaeParameters params = sparse::ImportTensors(*sae);
  if (sparse::IsBatchTopK(options.sae.architecture)) {
    // Exported as JumpReLU with the running threshold on every latent.
    params.topk_threshold = params.threshold.to(at::kDouble).mean();
  }
  return params;
}

absl::StatusOr<sparse::TrainerOptions> TrainerOptionsFor(const config::RunConfig& c) {
  sparse::TrainerOptions o;
  o.sae.architecture = c.architecture;
  if (!c.d_in || !config::EffectiveDSae(c)) {
    return absl::FailedPreconditionError("the run config is not resolved against its model");
  }
  o.sae.d_in = *c.d_in;
  o.sae.d_sae = *config::EffectiveDSae(c);
  o.sae.k = c.k.value_or(0);
  o.sae.normalize_activations = c.normalize_activations;
  o.sae.apply_b_dec_to_input = c.apply_b_dec_to_input;
  if (c.architecture == config::Architecture::kMatryoshkaBatchTopK) {
    // SAELens 6 appends d_sae when the last width is smaller.
    o.sae.matryoshka_widths = c.matryoshka_widths;
    if (o.sae.matryoshka_widths.empty() || o.sae.matryoshka_widths.back() < o.sae.d_sae) {
      o.sae.matryoshka_widths.push_back(o.sae.d_sae);
    }
  }
  o.topk_threshold_lr = c.topk_threshold_lr;
  o.jumprelu_init_threshold = c.jumprelu_init_threshold;
  o.jumprelu_bandwidth = c.jumprelu_bandwidth;
  o.jumprelu_sparsity_loss = c.jumprelu_sparsity_loss_mode;
  o.jumprelu_tanh_scale = c.jumprelu_tanh_scale;
  o.target_l0 = c.target_l0.value_or(0);
  o.jumprelu_ste_to_input = c.jumprelu_ste_to_input;
  o.l0_coefficient = c.l0_coefficient;
  o.l0_warm_up_steps = c.l0_warm_up_steps;
  o.pre_act_loss_coefficient = c.pre_act_loss_coefficient;
  o.seed = static_cast<uint64_t>(c.seed);
  o.b_dec_init = c.b_dec_init_method;
  o.decoder_init_norm = c.decoder_init_norm;
  o.lr = c.lr;
  o.adam_beta1 = c.adam_beta1;
  o.adam_beta2 = c.adam_beta2;
  o.lr_schedule = c.lr_scheduler_name;
  o.lr_warm_up_steps = c.lr_warm_up_steps;
  o.lr_end = config::EffectiveLrEnd(c);
  o.lr_decay_steps = c.lr_decay_steps;
  o.n_restart_cycles = c.n_restart_cycles;
  o.total_steps = config::TotalTrainingSteps(c);
  o.l1_coefficient = c.l1_coefficient;
  o.l1_warm_up_steps = c.l1_warm_up_steps;
  o.use_ghost_grads = c.use_ghost_grads;
  o.aux_k_coefficient = c.aux_k_coefficient;
  o.dead_tokens_threshold = c.dead_tokens_threshold;
  o.dead_feature_window = c.dead_feature_window;
  o.feature_sampling_window = c.feature_sampling_window;
  o.dead_feature_threshold = c.dead_feature_threshold;
  o.resample_dead_features = c.feature_sampling_method == config::FeatureSamplingMethod::kAnthropic;
  o.resample_batches = c.resample_batches;
  o.feature_reinit_scale = c.feature_reinit_scale;
  o.train_batch_size = c.train_batch_size;
  return o;
}

data::ActivationStoreOptions ActivationStoreOptionsFor(const config::RunConfig& c,
                                                       const model::HookPoint& hook) {
  data::ActivationStoreOptions o;
  o.hook = hook;
  o.head_index = c.hook_point_head_index ? static_cast<int>(*c.hook_point_head_index) : -1;
  o.store_batch_size = c.store_batch_size;
  o.buffer.capacity = c.n_batches_in_buffer * c.store_batch_size * c.context_size;
  o.buffer.shuffle = c.shuffle;
  o.buffer.seed = static_cast<uint64_t>(c.seed);
  o.buffer.dtype = at::kFloat;
  return o;
}

io::SaeLensMetadata SaeLensMetadataFor(const config::RunConfig& c) {
  io::SaeLensMetadata m;
  m.architecture = std::string(config::ToString(c.architecture));
  m.k = c.k.value_or(0);
  m.model_name = c.model_name;
  m.hook_name = c.hook_point;
  m.hook_layer = static_cast<int>(c.hook_point_layer.value_or(0));
  m.hook_head_index = c.hook_point_head_index ? static_cast<int>(*c.hook_point_head_index) : -1;
  m.context_size = static_cast<int>(c.context_size);
  m.prepend_bos = c.prepend_bos;
  m.dataset_path = c.dataset_path.value_or("");
  m.dtype = "float32";
  m.device = c.device;
  m.processing = std::string(config::ToString(c.processing));
  return m;
}

}  // namespace sae::training
