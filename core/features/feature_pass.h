// What an SAE's features do, measured on a model: one pass of the model over a set of contexts
// to the SAE's hook, the SAE's encoder on every token, the per-feature statistics of
// feature_collector.h; then each feature's logit effects (its decoder direction through ln_final
// and the unembedding) and its nearest features by decoder cosine. Definitions:
// docs/features.md.
#ifndef SAE_CORE_FEATURES_FEATURE_PASS_H_
#define SAE_CORE_FEATURES_FEATURE_PASS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/eval/sae_for_eval.h"
#include "core/features/feature_collector.h"
#include "core/model/gpt2_model.h"
#include "core/model/gpt2_weights.h"

namespace sae::features {

struct FeaturePassOptions {
  CollectorOptions collector;
  int logit_k = 10;     // tokens raised and lowered most
  int neighbours = 10;  // nearest features by decoder cosine
  int64_t contexts_per_batch = 0;  // 0: as many as keep a batch's activations near 256 MiB
  // Called after every batch with the contexts done and the total.
  std::function<void(int64_t done, int64_t total)> progress;
  // Called as each later phase starts: "logit effects", "decoder neighbours".
  std::function<void(const std::string& phase)> on_phase;
  // Polled after every batch and phase; true stops the computation with Cancelled.
  std::function<bool()> stop;
};

struct TokenValue {
  int32_t token = 0;
  float value = 0;
};

struct FeatureReport {
  std::vector<FeatureStats> stats;  // one per requested feature, in the requested order
  // Logit effects per requested feature (empty when !has_logits): the tokens whose logit the
  // feature's decoder row (as stored) raises most (descending) and lowers most (ascending).
  bool has_logits = false;
  std::string logits_note;  // why there are none
  std::vector<std::vector<TokenValue>> raised, lowered;
  // Nearest features by cosine of decoder rows (descending), the feature itself excluded.
  std::vector<std::vector<std::pair<int64_t, float>>> neighbours;
  int64_t contexts = 0, context_size = 0, tokens = 0;
  double pass_seconds = 0, logits_seconds = 0, neighbours_seconds = 0;
};

// Parses "3,17,100-199" into feature indices (ascending, without repeats), each below d_sae.
// InvalidArgument names the bad part.
absl::StatusOr<std::vector<int64_t>> ParseFeatureList(const std::string& list, int64_t d_sae);

// The SAE's feature activations on a batch of SAE inputs x [n, d_in] (float32), feature-major:
// [features.size(), n] with row i holding feature features[i]'s activation (TopK: zero where it
// is not among a token's k largest). `features` empty: every feature.
at::Tensor EncodeFeatureMajor(const sparse::SparseAutoencoder& sae, const at::Tensor& x,
                              const at::Tensor& features);

// Logit effects of `directions` [n, d_in] written at `hook` (head `head_index` of a per-head
// hook; -1 all heads): the direction carried into the residual stream (hook_z through the
// attention output W_O, mlp hook_post through the MLP output, residual-stream hooks unchanged),
// centred over d_model and scaled by ln_final's weight as ln_final does, through the
// unembedding, centred over the vocabulary: [n, V] float32. This is TransformerLens's processed
// W_U applied to the residual direction, whatever processing the model ran with.
// Unimplemented for hooks that do not write into the residual stream linearly.
absl::StatusOr<at::Tensor> LogitEffects(const model::Gpt2Weights& weights,
                                        const model::HookPoint& hook, int head_index,
                                        const at::Tensor& directions);

// The whole computation on `contexts` ([N, T] int64): `features` (SAE indices; empty: all).
// `weights` are the model's own (for the logit effects). Errors: CheckSaeFitsModel's,
// the model's; Cancelled when options.stop said so.
absl::StatusOr<FeatureReport> ComputeFeatureReport(const model::Gpt2Model& model,
                                                   const model::Gpt2Weights& weights,
                                                   const eval::SaeForEval& sae,
                                                   const at::Tensor& contexts,
                                                   const std::vector<int64_t>& features,
                                                   const FeaturePassOptions& options);

}  // namespace sae::features

#endif  // SAE_CORE_FEATURES_FEATURE_PASS_H_
