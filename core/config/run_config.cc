#include "core/config/run_config.h"

#include "absl/strings/str_cat.h"
#include "core/config/field.h"

namespace sae::config {

absl::string_view ToString(Architecture value) {
  switch (value) {
    case Architecture::kStandard:
      return "standard";
    case Architecture::kTopK:
      return "topk";
  }
  return "?";
}

absl::string_view ToString(LrScheduler value) {
  switch (value) {
    case LrScheduler::kConstant:
      return "constant";
    case LrScheduler::kConstantWithWarmup:
      return "constantwithwarmup";
    case LrScheduler::kLinearWarmupDecay:
      return "linearwarmupdecay";
    case LrScheduler::kCosineAnnealing:
      return "cosineannealing";
    case LrScheduler::kCosineAnnealingWarmup:
      return "cosineannealingwarmup";
    case LrScheduler::kCosineAnnealingWarmRestarts:
      return "cosineannealingwarmrestarts";
  }
  return "?";
}

absl::string_view ToString(BDecInitMethod value) {
  switch (value) {
    case BDecInitMethod::kGeometricMedian:
      return "geometric_median";
    case BDecInitMethod::kMean:
      return "mean";
    case BDecInitMethod::kZeros:
      return "zeros";
  }
  return "?";
}

absl::string_view ToString(FeatureSamplingMethod value) {
  switch (value) {
    case FeatureSamplingMethod::kAnthropic:
      return "anthropic";
  }
  return "?";
}

absl::string_view ToString(Processing value) {
  switch (value) {
    case Processing::kTransformerLens:
      return "transformer_lens";
    case Processing::kNone:
      return "none";
  }
  return "?";
}

absl::string_view ToString(DType value) {
  switch (value) {
    case DType::kFloat32:
      return "float32";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
  }
  return "?";
}

bool operator==(const RunConfig& a, const RunConfig& b) {
  for (const internal::Field& field : internal::Fields()) {
    if (!field.equal(a, b)) return false;
  }
  return true;
}

std::string KeyLocation(const RunConfig& config, absl::string_view key) {
  auto it = config.source.lines.find(key);
  if (it == config.source.lines.end()) return config.source.name;
  if (it->second == RunConfigSource::kOverrideLine) return "--set";
  return absl::StrCat(config.source.name, ":", it->second);
}

absl::Status ConfigKeyError(const RunConfig& config, absl::string_view key,
                            absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(KeyLocation(config, key), ": ", key, ": ", message));
}

int64_t TotalTrainingSteps(const RunConfig& config) {
  return config.train_batch_size > 0 ? config.total_training_tokens / config.train_batch_size : 0;
}

std::optional<int64_t> EffectiveDSae(const RunConfig& config) {
  if (config.d_sae) return config.d_sae;
  if (config.d_in && config.expansion_factor) return *config.d_in * *config.expansion_factor;
  return std::nullopt;
}

double EffectiveLrEnd(const RunConfig& config) {
  return config.lr_end ? *config.lr_end : config.lr / 10;
}

}  // namespace sae::config
