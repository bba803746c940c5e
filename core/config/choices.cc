#include "core/config/choices.h"

#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sae::config {

absl::string_view ToString(Architecture value) {
  switch (value) {
    case Architecture::kStandard:
      return "standard";
    case Architecture::kTopK:
      return "topk";
    case Architecture::kBatchTopK:
      return "batchtopk";
    case Architecture::kJumpReLU:
      return "jumprelu";
    case Architecture::kGated:
      return "gated";
    case Architecture::kMatryoshkaBatchTopK:
      return "matryoshka_batchtopk";
  }
  return "?";
}

absl::string_view ToString(JumpReLUSparsityLoss value) {
  switch (value) {
    case JumpReLUSparsityLoss::kStep:
      return "step";
    case JumpReLUSparsityLoss::kTanh:
      return "tanh";
    case JumpReLUSparsityLoss::kQuadratic:
      return "quadratic";
  }
  return "?";
}

absl::string_view ToString(NormalizeActivations value) {
  switch (value) {
    case NormalizeActivations::kNone:
      return "none";
    case NormalizeActivations::kExpectedAverageOnlyIn:
      return "expected_average_only_in";
    case NormalizeActivations::kConstantNormRescale:
      return "constant_norm_rescale";
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
    case Processing::kTransformerLensUncentered:
      return "transformer_lens_uncentered";
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

template <typename E>
absl::StatusOr<E> ParseChoice(absl::string_view name, absl::string_view what) {
  std::string key = absl::AsciiStrToLower(name);
  if (std::is_same_v<E, DType> && absl::StartsWith(key, "torch.")) key.erase(0, 6);
  for (E candidate : EnumValues<E>::kAll) {
    if (key == ToString(candidate)) return candidate;
  }
  return absl::InvalidArgumentError(absl::StrCat(what, ": unknown value '", name,
                                                 "' (expected one of: ",
                                                 absl::StrJoin(ChoiceNames<E>(), ", "), ")"));
}

template absl::StatusOr<Architecture> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<JumpReLUSparsityLoss> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<LrScheduler> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<NormalizeActivations> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<BDecInitMethod> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<FeatureSamplingMethod> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<Processing> ParseChoice(absl::string_view, absl::string_view);
template absl::StatusOr<DType> ParseChoice(absl::string_view, absl::string_view);

}  // namespace sae::config
