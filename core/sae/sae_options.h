// Hyper-parameters of an SAE and of its training, with the seed's names and defaults.
//
// The run.yaml schema (core/config) is the user-facing source of these values; these structs
// are what core/sae needs of it, so that the maths has no YAML dependency.
#ifndef SAE_CORE_SAE_SAE_OPTIONS_H_
#define SAE_CORE_SAE_SAE_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/choices.h"
#include "core/config/defaults.h"

namespace sae::sparse {

// The run's choices (core/config/choices.h), under the names the maths uses.
using Architecture = config::Architecture;
using BDecInit = config::BDecInitMethod;
using LrSchedule = config::LrScheduler;

// Conveniences over config::ParseChoice / config::ToString (InvalidArgument names the key).
absl::StatusOr<Architecture> ParseArchitecture(absl::string_view name);
absl::string_view ArchitectureName(Architecture a);
absl::StatusOr<BDecInit> ParseBDecInit(absl::string_view name);
absl::string_view BDecInitName(BDecInit b);
// Case-insensitive, as the seed's get_scheduler.
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view name);
absl::string_view LrScheduleName(LrSchedule s);

struct SaeOptions {
  Architecture architecture = config::defaults::kArchitecture;
  int64_t d_in = 512;
  int64_t d_sae = 2048;  // d_in * expansion_factor
  int64_t k = 32;        // active latents per token (topk; batchtopk family: on average)
  // matryoshka_batchtopk: strictly increasing prefix widths, the last equal to d_sae.
  std::vector<int64_t> matryoshka_widths;
  // How activations are scaled before the SAE (SAELens 6). expected_average_only_in is the
  // trainer's business (SaeTrainer::activation_scale, folded into exported weights);
  // constant_norm_rescale is applied by the SAE's inference entry points
  // (SparseAutoencoder::Infer, Encode, Reconstruct) and by the trainer before each step.
  config::NormalizeActivations normalize_activations = config::NormalizeActivations::kNone;
  // SAELens 6's apply_b_dec_to_input: the encoder reads x - b_dec (true, the seed's SAE) or x
  // itself (false; b_dec then only biases the decoder).
  bool apply_b_dec_to_input = true;
};

// True for batchtopk and matryoshka_batchtopk (one selection over the whole batch, a running
// threshold for inference).
inline bool IsBatchTopK(Architecture a) {
  return a == Architecture::kBatchTopK || a == Architecture::kMatryoshkaBatchTopK;
}

struct TrainerOptions {
  SaeOptions sae;
  uint64_t seed = config::defaults::kSeed;
  BDecInit b_dec_init = config::defaults::kBDecInitMethod;

  // SAELens 6's decoder_init_norm: W_dec's rows start at this norm and W_enc = W_dec^T (all
  // architectures). Unset: the seed's initialisation (sparse_autoencoder.h).
  std::optional<double> decoder_init_norm;

  // Optimiser: Adam (eps 1e-8), no weight decay, no gradient clipping.
  double lr = config::defaults::kLr;
  double adam_beta1 = 0.9;    // run.yaml adam_beta1 (SAELens 6's name and default)
  double adam_beta2 = 0.999;  // run.yaml adam_beta2
  LrSchedule lr_schedule = config::defaults::kLrScheduler;
  int64_t lr_warm_up_steps = config::defaults::kLrWarmUpSteps;
  // The seed passes lr / 10 as lr_end: an absolute floor for cosineannealing(warmrestarts),
  // and (as the seed's code does) a fraction of lr for cosineannealingwarmup.
  double lr_end = config::defaults::kLr / 10;
  int64_t total_steps = 488;  // total_training_tokens / train_batch_size
  // SAELens 6: the last lr_decay_steps steps decay linearly to 0 (core/sae/lr_schedule.h);
  // cosineannealingwarmrestarts restarts n_restart_cycles times.
  int64_t lr_decay_steps = 0;
  int64_t n_restart_cycles = 1;

  // Standard architecture.
  double l1_coefficient = config::defaults::kL1Coefficient;
  int64_t l1_warm_up_steps = config::defaults::kL1WarmUpSteps;  // linear rise from 0 (SAELens)
  bool use_ghost_grads = config::defaults::kUseGhostGrads;

  // TopK architecture.
  double aux_k_coefficient = config::defaults::kAuxKCoefficient;
  // A latent is dead for AuxK after this many tokens without firing.
  int64_t dead_tokens_threshold = config::defaults::kDeadTokensThreshold;

  // batchtopk and matryoshka_batchtopk: rate of the running threshold's average.
  double topk_threshold_lr = config::defaults::kTopKThresholdLr;

  // JumpReLU architecture.
  double jumprelu_init_threshold = config::defaults::kJumpReLUInitThreshold;
  double jumprelu_bandwidth = config::defaults::kJumpReLUBandwidth;
  config::JumpReLUSparsityLoss jumprelu_sparsity_loss = config::defaults::kJumpReLUSparsityLoss;
  double jumprelu_tanh_scale = config::defaults::kJumpReLUTanhScale;
  double target_l0 = 0;  // jumprelu_sparsity_loss quadratic
  bool jumprelu_ste_to_input = config::defaults::kJumpReLUSteToInput;
  double l0_coefficient = config::defaults::kL0Coefficient;
  int64_t l0_warm_up_steps = config::defaults::kL0WarmUpSteps;  // linear rise from 0
  std::optional<double> pre_act_loss_coefficient;                // unset: no pre-activation loss

  // Dead features and sparsity statistics.
  // Steps without firing before ghost grads apply.
  int64_t dead_feature_window = config::defaults::kDeadFeatureWindow;
  // Steps per feature-frequency window.
  int64_t feature_sampling_window = config::defaults::kFeatureSamplingWindow;
  double dead_feature_threshold = config::defaults::kDeadFeatureThreshold;

  // Anthropic resampling (feature_sampling_method: anthropic).
  bool resample_dead_features = false;
  int64_t resample_batches = config::defaults::kResampleBatches;
  double feature_reinit_scale = config::defaults::kFeatureReinitScale;

  // Tokens per global training step (train_batch_size).
  int64_t train_batch_size = config::defaults::kTrainBatchSize;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SAE_OPTIONS_H_
