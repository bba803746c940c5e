// Evaluating an SAE inside its model: three forwards per batch of contexts (clean; the hook
// replaced by the SAE's reconstruction; the hook zero-ablated) and the SAE's reconstruction
// statistics, summed over batches (eval_results.h). Definitions: docs/evals.md.
//
// One call evaluates a whole set of contexts:
//   SAE_ASSIGN_OR_RETURN(EvalResults r, EvaluateSae(model, sae, contexts, options));
// The training loop passes the trainer's current parameters in a SaeForEval and its held-out
// contexts as a ContextSource; a cluster can evaluate batches in several places with
// EvaluateBatch and add the EvalSums.
#ifndef SAE_CORE_EVAL_EVALUATION_H_
#define SAE_CORE_EVAL_EVALUATION_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/eval/eval_results.h"
#include "core/eval/sae_for_eval.h"
#include "core/model/gpt2_model.h"

namespace sae::eval {

// Where the contexts come from: each call returns the next `count` contexts as [count, T]
// int64 token ids. OutOfRange when fewer than `count` remain.
class ContextSource {
 public:
  virtual ~ContextSource() = default;
  virtual absl::StatusOr<at::Tensor> Next(int64_t count) = 0;
};

// Serves the rows of a [N, T] tensor in order.
class TensorContextSource : public ContextSource {
 public:
  explicit TensorContextSource(at::Tensor contexts) : contexts_(contexts.to(at::kLong)) {}
  absl::StatusOr<at::Tensor> Next(int64_t count) override;

 private:
  at::Tensor contexts_;
  int64_t next_ = 0;
};

// The first `count` contexts of `dataset`, packed as training packs them (context_packing.h;
// a 2-D .npy or JSONL `tokens` row is one context): [count, T] int64. `shard_index` 0: one shard
// over the data training reads; data::Dataset::kHeldOutShard: the held-out documents (evaluations
// during training). OutOfRange, naming the dataset and both counts, when it holds fewer
// (packing would wrap around into a second epoch).
absl::StatusOr<at::Tensor> ReadFirstContexts(std::shared_ptr<const data::Dataset> dataset,
                                             int64_t count, uint32_t shard_index = 0);

struct EvalOptions {
  int64_t n_eval_batches = 10;          // SAELens's n_eval_batches
  int64_t eval_batch_size_prompts = 8;  // contexts per forward
};

// Sums of one batch of contexts ([B, T] token ids) through `model`, `sae` reading and replacing
// the hook `site` says. `sae_model` is built from the SaeForEval (see EvaluateSae).
absl::StatusOr<EvalSums> EvaluateBatch(const model::Gpt2Model& model,
                                       const sparse::SparseAutoencoder& sae_model,
                                       const HookSite& site, const at::Tensor& tokens);

// Evaluates `sae` on n_eval_batches batches of eval_batch_size_prompts contexts from `contexts`.
// Errors: CheckSaeFitsModel's; InvalidArgument for non-positive options; the source's errors
// (OutOfRange when it runs out); the model's.
absl::StatusOr<EvalResults> EvaluateSae(const model::Gpt2Model& model, const SaeForEval& sae,
                                        ContextSource& contexts, const EvalOptions& options);

}  // namespace sae::eval

#endif  // SAE_CORE_EVAL_EVALUATION_H_
