// The defaults of the training hyper-parameters that both run.yaml (core/config/run_config.h)
// and the SAE maths (core/sae/sae_options.h, sparse_autoencoder.h) need: written once here, so
// that a trainer built without a run.yaml (tests, benchmarks, the reference harness) trains with
// the same values a user gets from an empty run.yaml. docs/config.md is checked against
// RunConfig's initialisers, which use these.
#ifndef SAE_CORE_CONFIG_DEFAULTS_H_
#define SAE_CORE_CONFIG_DEFAULTS_H_

#include <cstdint>

#include "core/config/choices.h"

namespace sae::config::defaults {

inline constexpr Architecture kArchitecture = Architecture::kStandard;
inline constexpr BDecInitMethod kBDecInitMethod = BDecInitMethod::kGeometricMedian;
inline constexpr int64_t kSeed = 42;
inline constexpr double kLr = 3e-4;
inline constexpr LrScheduler kLrScheduler = LrScheduler::kConstantWithWarmup;
inline constexpr int64_t kLrWarmUpSteps = 500;
inline constexpr double kL1Coefficient = 1e-3;
inline constexpr int64_t kL1WarmUpSteps = 0;
inline constexpr bool kUseGhostGrads = false;
inline constexpr double kAuxKCoefficient = 1.0 / 32;
inline constexpr int64_t kDeadTokensThreshold = 10'000'000;
inline constexpr int64_t kDeadFeatureWindow = 1000;
inline constexpr int64_t kFeatureSamplingWindow = 2000;
inline constexpr double kDeadFeatureThreshold = 1e-8;
inline constexpr int64_t kResampleBatches = 32;
inline constexpr double kFeatureReinitScale = 0.2;
inline constexpr int64_t kTrainBatchSize = 4096;

// Architectures of SAELens 6 (its defaults).
inline constexpr double kTopKThresholdLr = 0.01;
inline constexpr double kJumpReLUInitThreshold = 0.01;
inline constexpr double kJumpReLUBandwidth = 0.05;
inline constexpr JumpReLUSparsityLoss kJumpReLUSparsityLoss = JumpReLUSparsityLoss::kStep;
inline constexpr double kJumpReLUTanhScale = 4.0;
inline constexpr bool kJumpReLUSteToInput = false;
inline constexpr double kL0Coefficient = 1.0;
inline constexpr int64_t kL0WarmUpSteps = 0;

}  // namespace sae::config::defaults

#endif  // SAE_CORE_CONFIG_DEFAULTS_H_
