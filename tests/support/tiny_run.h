// Test support: a small run for the data-plane tests: a 2-layer GPT-2 of d_model 32 with random
// weights (the real vocabulary size), a nanoGPT .bin of random documents, and a run.yaml.
#ifndef SAE_TESTS_SUPPORT_TINY_RUN_H_
#define SAE_TESTS_SUPPORT_TINY_RUN_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/model/gpt2_weights.h"
#include "support/random_gpt2.h"
#include "support/random_tokens.h"

namespace sae::support {

// The run.yaml text of the tiny run in `dir` (model/ and tokens.bin), plus `extra` keys.
inline std::string TinyRunYaml(const std::string& dir, const std::string& extra = "") {
  return absl::StrCat("model_path: ", dir, "/model\n", "dataset_path: ", dir, "/tokens.bin\n",
                      "hook_point: blocks.1.hook_resid_pre\n"
                      "context_size: 16\n"
                      "expansion_factor: 4\n"
                      "train_batch_size: 64\n"
                      "total_training_tokens: 6400\n"
                      "n_batches_in_buffer: 8\n"
                      "store_batch_size: 4\n"
                      "lr: 0.001\n"
                      "lr_warm_up_steps: 2\n"
                      "b_dec_init_method: mean\n",
                      extra);
}

// Writes the model and tokens into `dir`. Header-only: its users link the model and config
// libraries.
inline absl::Status WriteTinyRunFiles(const std::string& dir, int documents = 2000) {
  absl::Status saved =
      model::SaveGpt2(model::RandomGpt2Weights(TinyConfig(), 1), dir + "/model");
  if (!saved.ok()) return saved;
  return WriteRandomTokens(dir + "/tokens.bin", documents, 2);
}

// The tiny run's config with `overrides` ("key=value", as saectl --set) applied; a default
// config (which fails later, loudly) when they do not apply.
inline config::RunConfig ParseTinyRun(const std::string& dir,
                                      const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<config::RunConfig> config = config::ParseRunConfig(TinyRunYaml(dir), "run.yaml");
  if (!config.ok() || !config::ApplyOverrides(*config, overrides).ok()) return config::RunConfig();
  return *config;
}

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_TINY_RUN_H_
