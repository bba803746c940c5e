// The enumerated choices of a run, one set shared by run.yaml (core/config), the SAE maths
// (core/sae) and the model (core/model), so that a parsed config reaches the code that uses it
// as a value, never as a string parsed a second time.
//
// Each enumerator's canonical spelling is what run.yaml, cfg.json and the CLI flags accept and
// write (ToString); ParseChoice reads it back.
#ifndef SAE_CORE_CONFIG_CHOICES_H_
#define SAE_CORE_CONFIG_CHOICES_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::config {

// `architecture`: which SAE is trained.
enum class Architecture {
  kStandard,  // "standard": the seed's ReLU SAE with an L1 penalty (and optional ghost grads)
  kTopK,      // "topk": keep the k largest pre-activations per token, AuxK for dead latents
  // ---- Architectures of SAELens 6 (core/sae/batch_topk.h, jump_relu.h, gated.h) ----
  kBatchTopK,            // "batchtopk": the k * B largest activations over the whole batch
  kJumpReLU,             // "jumprelu": per-feature threshold, straight-through L0 penalty
  kGated,                // "gated": gating and magnitude paths sharing W_enc
  kMatryoshkaBatchTopK,  // "matryoshka_batchtopk": batchtopk plus nested prefix losses
};

// `normalize_activations`: how activations are scaled before the SAE sees them (SAELens 6's
// names; docs/definitions.md).
enum class NormalizeActivations {
  kNone,                   // "none"
  kExpectedAverageOnlyIn,  // "expected_average_only_in": times sqrt(d_in) / mean ||x||, estimated
                           // before training, folded into the weights at export
  kConstantNormRescale,    // "constant_norm_rescale": each x times sqrt(d_in) / ||x||, undone on
                           // the output (kept in cfg.json, applied at inference)
};

// `jumprelu_sparsity_loss_mode`: the JumpReLU sparsity penalty.
enum class JumpReLUSparsityLoss {
  kStep,  // "step": L0 through the step function's straight-through estimator (DeepMind)
  kTanh,  // "tanh": sum_j tanh(jumprelu_tanh_scale * f_j ||W_dec_j||) (Anthropic)
  // "quadratic": 2 / target_l0 * (L0 - target_l0)^2 per token, L0 through the step function's
  // straight-through estimator (DeepMind, Gemma Scope 2)
  kQuadratic,
};

// `lr_scheduler_name`: the seed's learning-rate schedules (docs/definitions.md).
enum class LrScheduler {
  kConstant,                     // "constant"
  kConstantWithWarmup,           // "constantwithwarmup"
  kLinearWarmupDecay,            // "linearwarmupdecay"
  kCosineAnnealing,              // "cosineannealing"
  kCosineAnnealingWarmup,        // "cosineannealingwarmup"
  kCosineAnnealingWarmRestarts,  // "cosineannealingwarmrestarts"
};

// `b_dec_init_method`: how the decoder bias starts.
enum class BDecInitMethod {
  kGeometricMedian,  // "geometric_median" of the first storage buffer (Weiszfeld)
  kMean,             // "mean" of the first storage buffer
  kZeros,            // "zeros"
};

// `feature_sampling_method`: the only non-null value; null (std::nullopt) means no resampling.
enum class FeatureSamplingMethod {
  kAnthropic,  // "anthropic": resample dead features as in "Towards Monosemanticity"
};

// `processing`: weight processing applied to GPT-2 before hooks are read.
enum class Processing {
  kTransformerLens,  // "transformer_lens": fold_ln, center_writing_weights, center_unembed,
                     // fold_value_biases, as HookedTransformer.from_pretrained does
  kNone,             // "none": the Hugging Face weights as they are
  kTransformerLensUncentered,  // "transformer_lens_uncentered": fold_ln, center_unembed,
                               // fold_value_biases without center_writing_weights (SAELens's
                               // default model_from_pretrained_kwargs for HookedTransformer)
};

// `dtype` and `wire_dtype`. Parsing also accepts the seed's "torch.float32" forms.
enum class DType {
  kFloat32,   // "float32"
  kBFloat16,  // "bfloat16"
  kFloat16,   // "float16"
};

// The canonical spelling of each enumerator, e.g. ToString(LrScheduler::kConstant) is
// "constant".
absl::string_view ToString(Architecture value);
absl::string_view ToString(JumpReLUSparsityLoss value);
absl::string_view ToString(NormalizeActivations value);
absl::string_view ToString(LrScheduler value);
absl::string_view ToString(BDecInitMethod value);
absl::string_view ToString(FeatureSamplingMethod value);
absl::string_view ToString(Processing value);
absl::string_view ToString(DType value);

// Every enumerator of E, in declaration order.
template <typename E>
struct EnumValues;
template <>
struct EnumValues<Architecture> {
  static constexpr std::array<Architecture, 6> kAll = {
      Architecture::kStandard, Architecture::kTopK,  Architecture::kBatchTopK,
      Architecture::kJumpReLU, Architecture::kGated, Architecture::kMatryoshkaBatchTopK};
};
template <>
struct EnumValues<JumpReLUSparsityLoss> {
  static constexpr std::array<JumpReLUSparsityLoss, 3> kAll = {
      JumpReLUSparsityLoss::kStep, JumpReLUSparsityLoss::kTanh, JumpReLUSparsityLoss::kQuadratic};
};
template <>
struct EnumValues<NormalizeActivations> {
  static constexpr std::array<NormalizeActivations, 3> kAll = {
      NormalizeActivations::kNone, NormalizeActivations::kExpectedAverageOnlyIn,
      NormalizeActivations::kConstantNormRescale};
};
template <>
struct EnumValues<LrScheduler> {
  static constexpr std::array<LrScheduler, 6> kAll = {
      LrScheduler::kConstant,        LrScheduler::kConstantWithWarmup,
      LrScheduler::kLinearWarmupDecay, LrScheduler::kCosineAnnealing,
      LrScheduler::kCosineAnnealingWarmup, LrScheduler::kCosineAnnealingWarmRestarts};
};
template <>
struct EnumValues<BDecInitMethod> {
  static constexpr std::array<BDecInitMethod, 3> kAll = {
      BDecInitMethod::kGeometricMedian, BDecInitMethod::kMean, BDecInitMethod::kZeros};
};
template <>
struct EnumValues<FeatureSamplingMethod> {
  static constexpr std::array<FeatureSamplingMethod, 1> kAll = {
      FeatureSamplingMethod::kAnthropic};
};
template <>
struct EnumValues<Processing> {
  static constexpr std::array<Processing, 3> kAll = {
      Processing::kTransformerLens, Processing::kNone, Processing::kTransformerLensUncentered};
};
template <>
struct EnumValues<DType> {
  static constexpr std::array<DType, 3> kAll = {DType::kFloat32, DType::kBFloat16,
                                                DType::kFloat16};
};

// The canonical names of E's enumerators, in declaration order.
template <typename E>
std::vector<std::string> ChoiceNames() {
  std::vector<std::string> names;
  for (E value : EnumValues<E>::kAll) names.emplace_back(ToString(value));
  return names;
}

// The enumerator spelt `name`, case-insensitively (the seed lower-cases scheduler names) and,
// for DType, with an optional "torch." prefix. InvalidArgument naming `what` (a key or flag),
// the name and the allowed ones.
template <typename E>
absl::StatusOr<E> ParseChoice(absl::string_view name, absl::string_view what);

extern template absl::StatusOr<Architecture> ParseChoice(absl::string_view, absl::string_view);
extern template absl::StatusOr<JumpReLUSparsityLoss> ParseChoice(absl::string_view,
                                                                 absl::string_view);
extern template absl::StatusOr<LrScheduler> ParseChoice(absl::string_view, absl::string_view);
extern template absl::StatusOr<NormalizeActivations> ParseChoice(absl::string_view,
                                                                 absl::string_view);
extern template absl::StatusOr<BDecInitMethod> ParseChoice(absl::string_view, absl::string_view);
extern template absl::StatusOr<FeatureSamplingMethod> ParseChoice(absl::string_view,
                                                                  absl::string_view);
extern template absl::StatusOr<Processing> ParseChoice(absl::string_view, absl::string_view);
extern template absl::StatusOr<DType> ParseChoice(absl::string_view, absl::string_view);

}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_CHOICES_H_
