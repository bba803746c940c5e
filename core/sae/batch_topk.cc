#include "core/sae/batch_topk.h"

#include <algorithm>

#include "core/sae/sparse_kernels.h"

namespace sae::sparse {

at::Tensor BatchTopKCandidates(const at::Tensor& hidden_pre, int64_t K) {
  at::Tensor acts = at::relu(hidden_pre).flatten();
  const int64_t n = std::min<int64_t>(K, acts.numel());
  at::Tensor top = std::get<0>(acts.topk(n, 0, /*largest=*/true, /*sorted=*/false)).contiguous();
  if (n == K) return top;
  return at::cat({top, at::zeros({K - n}, top.options())});
}

BatchSelection SelectBatchTopK(const at::Tensor& candidates, int64_t K) {
  const int64_t n = std::min<int64_t>(K, candidates.numel());
  at::Tensor top = std::get<0>(candidates.topk(n, 0, true, false));
  BatchSelection selection;
  selection.threshold = top.min().item<double>();
  at::Tensor positive = top.masked_select(top > 0);
  selection.min_kept = positive.numel() > 0 ? positive.min().item<double>() : 0.0;
  return selection;
}

void BatchTopKFinishForward(const SaeParameters& params, const BatchSelection& selection,
                            ForwardPass& pass) {
  pass.selection = selection;
  at::Tensor acts = at::relu(pass.hidden_pre);
  at::Tensor kept = acts > 0;
  if (selection.threshold > 0) kept = acts >= static_cast<float>(selection.threshold);
  pass.feature_acts = acts * kept;
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
}

double UpdatedTopKThreshold(double previous, const BatchSelection& selection, double rate) {
  if (!(selection.min_kept > 0)) return previous;
  return (1 - rate) * previous + rate * selection.min_kept;
}

void BatchTopKBackward(const SaeOptions& options, const SaeParameters& params,
                       const ForwardPass& pass, const LossOptions& loss, StepBuffer& buffer) {
  const at::Tensor& f = pass.feature_acts;  // [B,S]
  const int64_t B = pass.x.size(0), D = options.d_in;

  // Outer reconstruction: mse = mean over tokens of ||x_hat - x||^2.
  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = diff * (2.0 / B);
  at::Tensor df = at::mm(G, params.W_dec.t());  // [B,S]
  at::mm_out(buffer.W_dec, f.t(), G);
  at::sum_out(buffer.b_dec, G, {0});

  // Matryoshka: each prefix of the latents [0, w) reconstructs x on its own (b_dec included).
  double inner = 0;
  if (options.architecture == Architecture::kMatryoshkaBatchTopK) {
    at::Tensor partial = params.b_dec.expand({B, D}).clone();
    int64_t previous = 0;
    for (size_t i = 0; i + 1 < options.matryoshka_widths.size(); ++i) {
      const int64_t w = options.matryoshka_widths[i];
      partial.addmm_(f.narrow(1, previous, w - previous),
                     params.W_dec.narrow(0, previous, w - previous));
      at::Tensor d = partial - pass.x;
      inner += d.pow(2).sum(1).mean().item<double>();
      at::Tensor Gi = d * (2.0 / B);
      df.narrow(1, 0, w).add_(at::mm(Gi, params.W_dec.narrow(0, 0, w).t()));
      buffer.W_dec.narrow(0, 0, w).add_(at::mm(f.narrow(1, 0, w).t(), Gi));
      buffer.b_dec.add_(Gi.sum(0));
      previous = w;
    }
  }

  // Through the selection: kept activations pass the gradient straight to h.
  at::Tensor dh = df * (f > 0);

  // AuxK (SAELens 6): the top k_aux pre-activations of dead latents reconstruct the residual.
  double aux = 0;
  if (loss.dead_mask.defined() && loss.dead_mask.any().item<bool>()) {
    at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
    const int64_t n_dead = dead.numel();
    const int64_t half = std::max<int64_t>(D / 2, 1);
    const int64_t k_aux = std::min(half, n_dead);
    const double scale = std::min(static_cast<double>(n_dead) / half, 1.0);
    auto [aux_vals, local] = pass.hidden_pre.index_select(1, dead).topk(k_aux, 1, true, false);
    aux_vals = aux_vals.contiguous();
    at::Tensor aux_idx = dead.index_select(0, local.flatten()).view({B, k_aux});
    at::Tensor gap = at::zeros({B, D}, at::kFloat);
    SparseRowsCombine(params.W_dec, aux_idx, aux_vals, gap);
    gap.add_(diff);  // recons - (x - x_hat), the residual detached
    const double coefficient = loss.aux_k_coefficient * scale;
    aux = coefficient * gap.pow(2).sum(1).mean().item<double>();
    at::Tensor Ga = gap * (2.0 * coefficient / B);
    SparseRowsAccumulate(aux_idx, aux_vals, Ga, buffer.W_dec);
    dh.scatter_add_(1, aux_idx, SparseRowsDot(params.W_dec, aux_idx, Ga));
  }

  at::mm_out(buffer.W_enc, pass.sae_in.t(), dh);
  at::sum_out(buffer.b_enc, dh, {0});
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params.W_enc, buffer.b_enc));

  at::Tensor active = (f > 0).to(at::kFloat);
  at::sum_out(buffer.fired, active, {0});
  buffer.set_scalar(StepBuffer::kL0TokenSum, active.sum().item<double>());
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, f.sum().item<double>() / B);
  buffer.set_scalar(StepBuffer::kAuxSum, aux);
  buffer.set_scalar(StepBuffer::kInnerMseSum, inner);
  buffer.set_scalar(StepBuffer::kLossSum, mse + inner + aux);
}

}  // namespace sae::sparse
