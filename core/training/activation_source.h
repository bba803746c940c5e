// Where a training process gets its activations: GPT-2 over the dataset (ActivationStore), or a
// cache of activations written by `saectl cache`. Single-thread use.
#ifndef SAE_CORE_TRAINING_ACTIVATION_SOURCE_H_
#define SAE_CORE_TRAINING_ACTIVATION_SOURCE_H_

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/training/run_assets.h"

namespace sae::training {

class ActivationSource {
 public:
  virtual ~ActivationSource() = default;
  // The next `n` activations, [n, d_in] float32.
  virtual absl::StatusOr<at::Tensor> NextBatch(int64_t n) = 0;
  // The first `n` activations before mixing (b_dec initialisation); they stay in the stream.
  virtual absl::StatusOr<at::Tensor> InitialSample(int64_t n) = 0;
  // Opaque bytes that OpenActivationSource resumes from: exactly where the next batch starts
  // when the run does not shuffle, the generation frontier when it does.
  virtual std::string ResumeToken() const = 0;
  virtual int64_t d_in() const = 0;
  // Tokens (contexts x context_size) run through the model so far; 0 for a cache.
  virtual int64_t tokens_generated() const = 0;
};

// The source `config` asks for: the activation cache when use_cached_activations, otherwise
// GPT-2 (assets.model) over shard 0 of 1 of assets.dataset. `resume_token` continues a stream.
// `more_hooks` (GPT-2 only): hooks captured by the same forward, their columns after those of
// assets.hook (data::ActivationStoreOptions::more_hooks).
absl::StatusOr<std::unique_ptr<ActivationSource>> OpenActivationSource(
    const config::RunConfig& config, const RunAssets& assets,
    const std::string* resume_token = nullptr,
    const std::vector<model::HookPoint>& more_hooks = {});

// Writes `rows` activations of `source` into `dir` as safetensors chunks of at most
// `chunk_rows` rows (tensor "activations" [N, d_in], float32) plus manifest.json, which records
// the run's model, hook and d_in. Files are written atomically; the manifest last.
absl::Status WriteActivationCache(ActivationSource& source, const config::RunConfig& config,
                                  int64_t rows, int64_t chunk_rows, const std::string& dir);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_ACTIVATION_SOURCE_H_
