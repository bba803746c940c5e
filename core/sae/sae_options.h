// Hyper-parameters of an SAE and of its training, with the seed's names and defaults.
//
// The run.yaml schema (core/config) is the user-facing source of these values; these structs
// are what core/sae needs of it, so that the maths has no YAML dependency.
#ifndef SAE_CORE_SAE_SAE_OPTIONS_H_
#define SAE_CORE_SAE_SAE_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::sparse {

enum class Architecture {
  kStandard,  // the seed's ReLU SAE with L1 penalty and optional ghost gradients
  kTopK,      // TopK activation with AuxK (OpenAI, SAELens 6)
};

enum class BDecInit { kGeometricMedian, kMean, kZeros };

enum class LrSchedule {
  kConstant,
  kConstantWithWarmup,
  kLinearWarmupDecay,
  kCosineAnnealing,
  kCosineAnnealingWarmup,
  kCosineAnnealingWarmRestarts,
};

absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name);
absl::string_view ArchitectureName(Architecture a);
absl::StatusOr<BDecInit> ParseBDecInit(absl::string_view name);
absl::string_view BDecInitName(BDecInit b);
// Case-insensitive, as the seed's get_scheduler.
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name);
absl::string_view LrScheduleName(LrSchedule s);

struct SaeOptions {
  Architecture architecture = Architecture::kStandard;
  int64_t d_in = 512;
  int64_t d_sae = 2048;  // d_in * expansion_factor
  int64_t k = 32;        // active latents per token (topk only)
};

struct TrainerOptions {
  SaeOptions sae;
  uint64_t seed = 42;
  BDecInit b_dec_init = BDecInit::kGeometricMedian;

  // Optimiser: Adam (betas 0.9, 0.999, eps 1e-8), no weight decay, no gradient clipping.
  double lr = 3e-4;
  LrSchedule lr_schedule = LrSchedule::kConstantWithWarmup;
  int64_t lr_warm_up_steps = 500;
  // The seed passes lr / 10 as lr_end: an absolute floor for cosineannealing(warmrestarts),
  // and (as the seed's code does) a fraction of lr for cosineannealingwarmup.
  double lr_end = 3e-5;
  int64_t total_steps = 488;  // total_training_tokens / train_batch_size

  // Standard architecture.
  double l1_coefficient = 1e-3;
  int64_t l1_warm_up_steps = 0;  // coefficient rises linearly from 0 (SAELens)
  bool use_ghost_grads = false;

  // TopK architecture.
  double aux_k_coefficient = 1.0 / 32;
  // A latent is dead for AuxK after this many tokens without firing.
  int64_t dead_tokens_threshold = 10'000'000;

  // Dead features and sparsity statistics.
  int64_t dead_feature_window = 1000;      // steps without firing before ghost grads apply
  int64_t feature_sampling_window = 2000;  // steps per feature-frequency window
  double dead_feature_threshold = 1e-8;

  // Anthropic resampling (feature_sampling_method: anthropic).
  bool resample_dead_features = false;
  int64_t resample_batches = 32;
  double feature_reinit_scale = 0.2;

  // Tokens per global training step (train_batch_size).
  int64_t train_batch_size = 4096;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SAE_OPTIONS_H_
