#include "core/eval/evaluation.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/data/context_shard.h"
#include "core/util/status.h"

namespace sae::eval {
namespace {

// Adds the reconstruction and sparsity statistics of one SAE forward to `sums`.
void AddSaeStatistics(const sparse::SparseAutoencoder& sae, const sparse::ForwardPass& pass,
                      EvalSums& sums) {
  const at::Tensor x = pass.x.to(at::kDouble);
  const at::Tensor x_hat = pass.x_hat.to(at::kDouble);
  const at::Tensor norm_in = x.norm(2, {1});
  const at::Tensor norm_out = x_hat.norm(2, {1});
  const at::Tensor dot = (x * x_hat).sum(1);
  sums.tokens += x.size(0);
  sums.squared_error += (x - x_hat).pow(2).sum().item<double>();
  sums.squared_norm_in += norm_in.pow(2).sum().item<double>();
  const at::Tensor input_sum = x.sum(0);
  sums.input_sum = sums.input_sum.defined() ? sums.input_sum + input_sum : input_sum;
  sums.cossim += (dot / (norm_in * norm_out)).sum().item<double>();
  sums.norm_in += norm_in.sum().item<double>();
  sums.norm_out += norm_out.sum().item<double>();
  sums.norm_ratio += (norm_out / norm_in).sum().item<double>();
  sums.squared_norm_out += norm_out.pow(2).sum().item<double>();
  sums.dot += dot.sum().item<double>();

  at::Tensor fired;
  if (sae.options().architecture != sparse::Architecture::kTopK) {
    const at::Tensor active = pass.feature_acts > 0;
    sums.l0 += static_cast<double>(active.sum().item<int64_t>());
    sums.l1 += pass.feature_acts.to(at::kDouble).abs().sum().item<double>();
    fired = active.sum(0);
  } else {
    const at::Tensor active = pass.topk_values > 0;
    sums.l0 += static_cast<double>(active.sum().item<int64_t>());
    sums.l1 += pass.topk_values.to(at::kDouble).abs().sum().item<double>();
    fired = at::zeros({sae.options().d_sae}, at::kLong)
                .index_add_(0, pass.topk_indices.flatten(), active.flatten().to(at::kLong));
  }
  sums.firing_counts = sums.firing_counts.defined() ? sums.firing_counts + fired : fired;
}

// Whether `c` is the first context of the shard's next epoch (packing ended exactly at the end
// of the data), as opposed to a context inside it.
bool AtEpochStart(const data::ShardCursor& c, const data::ShardCursor& begin) {
  return c.epoch == begin.epoch + 1 && c.file_index == begin.file_index &&
         c.offset == begin.offset && c.tokens_into_document == 0;
}

}  // namespace

absl::StatusOr<at::Tensor> TensorContextSource::Next(int64_t count) {
  const int64_t rows = contexts_.size(0);
  if (count > rows - next_) {
    return absl::OutOfRangeError(absl::StrCat("asked for contexts ", next_, "..",
                                              next_ + count - 1, " of only ", rows));
  }
  at::Tensor batch = contexts_.narrow(0, next_, count);
  next_ += count;
  return batch;
}

absl::StatusOr<at::Tensor> ReadFirstContexts(std::shared_ptr<const data::Dataset> dataset,
                                             int64_t count, uint32_t shard_index) {
  const int64_t T = dataset->options().context_size;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<data::ContextShard> shard,
                       data::ContextShard::Open(dataset, shard_index, 1));
  const data::ShardCursor begin = shard->cursor();
  auto too_short = [&](int64_t held) {
    return absl::OutOfRangeError(absl::StrCat(
        "dataset ", dataset->options().dataset_path, " (", dataset->Describe(), ") holds ", held,
        " contexts of ", T, " tokens, fewer than the ", count, " asked"));
  };
  at::Tensor out = at::empty({count, T}, at::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  std::vector<int32_t> context;
  for (int64_t i = 0; i < count; ++i) {
    if (shard->cursor().epoch != begin.epoch) return too_short(i);
    SAE_RETURN_IF_ERROR(shard->Next(&context));
    const data::ShardCursor after = shard->cursor();
    if (after.epoch != begin.epoch && !AtEpochStart(after, begin)) return too_short(i);
    for (int64_t t = 0; t < T; ++t) dst[i * T + t] = context[static_cast<size_t>(t)];
  }
  return out;
}

absl::StatusOr<EvalSums> EvaluateBatch(const model::Gpt2Model& model,
                                       const sparse::SparseAutoencoder& sae_model,
                                       const HookSite& site, const at::Tensor& tokens) {
  if (tokens.dim() != 2 || tokens.size(1) < 2) {
    return absl::InvalidArgumentError(
        "evaluation contexts must be [batch, T] token ids with T >= 2 (CE needs a next token)");
  }
  const int64_t B = tokens.size(0), T = tokens.size(1);
  EvalSums sums;
  sums.contexts = B;
  sums.context_size = T;
  sums.ce_positions = B * (T - 1);
  sums.kl_positions = B * T;

  // Each forward returns logits only: one log-softmax per forward gives both the CE (gathered at
  // the next tokens, positions 0..T-2) and the KL, instead of the model's own for the loss.
  const at::Tensor next = tokens.narrow(1, 1, T - 1).unsqueeze(-1).to(at::kLong);  // [B,T-1,1]
  auto ce_sum = [&](const at::Tensor& log_q) {
    return -log_q.narrow(1, 0, T - 1).gather(-1, next).to(at::kDouble).sum().item<double>();
  };
  model::ForwardRequest clean_request;
  clean_request.logits = true;
  at::Tensor log_p;
  {
    SAE_ASSIGN_OR_RETURN(model::ForwardResult clean, model.Forward(tokens, clean_request));
    log_p = at::log_softmax(clean.logits, -1);  // [B,T,V]
  }
  sums.ce_clean = ce_sum(log_p);
  const at::Tensor p = log_p.exp();
  // The CE of `logits`, and the sum over positions of sum_v p (log p - log q), in place over the
  // one [B,T,V] log-softmax.
  auto ce_and_kl = [&](const at::Tensor& logits, double& ce, double& kl) {
    at::Tensor t = at::log_softmax(logits, -1);
    ce = ce_sum(t);
    t.neg_().add_(log_p).mul_(p);
    kl = t.sum(-1).to(at::kDouble).sum().item<double>();
  };

  model::ForwardRequest sae_request;
  sae_request.logits = true;
  sae_request.interventions.emplace_back(site.hook(), [&](const at::Tensor& value) {
    sparse::ForwardPass pass = sae_model.Infer(site.SaeInput(value));
    AddSaeStatistics(sae_model, pass, sums);
    return site.Replace(value, pass.x_hat);
  });
  {
    SAE_ASSIGN_OR_RETURN(model::ForwardResult spliced, model.Forward(tokens, sae_request));
    ce_and_kl(spliced.logits, sums.ce_sae, sums.kl_sae);
  }

  model::ForwardRequest ablation_request;
  ablation_request.logits = true;
  ablation_request.interventions.emplace_back(
      site.hook(), [&](const at::Tensor& value) { return site.Ablate(value); });
  {
    SAE_ASSIGN_OR_RETURN(model::ForwardResult ablated, model.Forward(tokens, ablation_request));
    ce_and_kl(ablated.logits, sums.ce_ablation, sums.kl_ablation);
  }
  return sums;
}

absl::StatusOr<EvalResults> EvaluateSae(const model::Gpt2Model& model, const SaeForEval& sae,
                                        ContextSource& contexts, const EvalOptions& options) {
  if (options.n_eval_batches <= 0 || options.eval_batch_size_prompts <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_eval_batches (", options.n_eval_batches, ") and eval_batch_size_prompts (",
        options.eval_batch_size_prompts, ") must be positive"));
  }
  SAE_ASSIGN_OR_RETURN(model::HookPoint hook, CheckSaeFitsModel(sae, model.config(), "given"));
  const HookSite site(hook, sae.hook_head_index);
  const sparse::SparseAutoencoder sae_model(sae.options, sae.params);
  EvalSums total;
  for (int64_t b = 0; b < options.n_eval_batches; ++b) {
    SAE_ASSIGN_OR_RETURN(at::Tensor tokens, contexts.Next(options.eval_batch_size_prompts));
    SAE_ASSIGN_OR_RETURN(EvalSums sums, EvaluateBatch(model, sae_model, site, tokens));
    total.Add(sums);
  }
  return ResultsFromSums(total);
}

}  // namespace sae::eval
