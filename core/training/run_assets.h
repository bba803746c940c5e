// What a run needs, loaded from its run.yaml: the model, the tokenizer, the dataset, the hook,
// and the options of the activation store and of the SAE trainer. Shared by `saectl train`,
// the activation server and the trainer service, so that every path reads a run the same way.
#ifndef SAE_CORE_TRAINING_RUN_ASSETS_H_
#define SAE_CORE_TRAINING_RUN_ASSETS_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/data/activation_store.h"
#include "core/data/dataset.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_model.h"
#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"
#include "core/tokenizer/gpt2_tokenizer.h"

namespace sae::training {

struct RunAssets {
  std::unique_ptr<model::Gpt2Model> model;
  std::unique_ptr<tokenizer::Gpt2Tokenizer> tokenizer;  // null when the data needs none
  std::shared_ptr<const data::Dataset> dataset;
  model::HookPoint hook;
};

// Reads model_path's config.json and resolves `config` against it (hook_point_layer, d_in,
// d_sae derived or checked; errors name the key and line).
absl::Status ResolveRunConfig(config::RunConfig& config);

// The fraction of the dataset's end that training never reads (data::DatasetOptions
// held_out_fraction): eval_held_out_fraction when the run evaluates on its own dataset
// (n_eval_batches > 0, no eval_dataset_path), else 0.
double HeldOutFraction(const config::RunConfig& config);

// Resolves `config`, then loads the model (model_path, with `processing`), the tokenizer
// (tokenizer_path, else model_path when it holds vocab.json/encoder.json, else the default
// cache folder) and the dataset. With `with_model` false only the dataset side is loaded.
absl::StatusOr<RunAssets> LoadRunAssets(config::RunConfig& config, bool with_model = true);

// The tokenizer folder a run uses (see LoadRunAssets).
std::string TokenizerFolderFor(const config::RunConfig& config);

// Options of the SAE trainer for a resolved config.
absl::StatusOr<sparse::TrainerOptions> TrainerOptionsFor(const config::RunConfig& config);

// The SAE a run starts from: the SAELens folder of from_pretrained_path, checked against the
// trainer's d_in and d_sae (an error names the key and line); nullopt when the run names none.
absl::StatusOr<std::optional<sparse::SaeParameters>> PretrainedSaeFor(
    const config::RunConfig& config, const sparse::TrainerOptions& options);

// Options of the activation store (buffer of n_batches_in_buffer * store_batch_size *
// context_size activations, shuffle, seed).
data::ActivationStoreOptions ActivationStoreOptionsFor(const config::RunConfig& config,
                                                       const model::HookPoint& hook);

// What cfg.json records of the run.
io::SaeLensMetadata SaeLensMetadataFor(const config::RunConfig& config);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_RUN_ASSETS_H_
