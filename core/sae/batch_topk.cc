#include "core/sae/batch_topk.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

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
                            double max_density, ForwardPass& pass) {
  pass.selection = selection;
  // Kept: relu(h) > 0 and, once the batch has K positive values, relu(h) >= the threshold.
  const float threshold = static_cast<float>(selection.threshold);
  if (max_density >= 0) {
    const int64_t B = pass.hidden_pre.size(0), S = pass.hidden_pre.size(1);
    // keep(v) implies v > bound, the scan's vectorised test.
    const float bound = threshold > 0 ? std::nextafter(threshold, 0.0f) : 0.0f;
    const std::vector<float> lower(S, bound);
    auto entries = std::make_shared<LatentEntries>();
    const double cap = std::min(max_density, 1.0) * static_cast<double>(B) * S;
    if (CollectLatentEntries(
            pass.hidden_pre, static_cast<int64_t>(cap), lower.data(),
            [threshold](float v, int64_t) { return v > 0.0f && v >= threshold; }, *entries)) {
      pass.x_hat = params.b_dec.expand({B, params.b_dec.size(0)}).clone();
      LatentEntriesCombine(params.W_dec, *entries, entries->value.data(), pass.x_hat);
      pass.entries = std::move(entries);
      return;
    }
  }
  at::Tensor acts = at::relu(pass.hidden_pre);
  at::Tensor kept = acts > 0;
  if (selection.threshold > 0) kept = acts >= threshold;
  pass.feature_acts = acts * kept;
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
}

double UpdatedTopKThreshold(double previous, const BatchSelection& selection, double rate) {
  if (!(selection.min_kept > 0)) return previous;
  return (1 - rate) * previous + rate * selection.min_kept;
}

namespace {

// AuxK as SAELens 6: the top k_aux pre-activations of dead latents reconstruct the residual
// (x - x_hat, detached). Adds its decoder gradient to buffer.W_dec and returns the loss and the
// gradient into those pre-activations (aux_dh [B,k_aux] at aux_idx), or 0 and undefined tensors
// when no latent is dead.
struct AuxK {
  double loss = 0;
  at::Tensor idx, dh;
};

AuxK AuxKLoss(const SaeOptions& options, const SaeParameters& params, const ForwardPass& pass,
              const at::Tensor& diff, const LossOptions& loss, StepBuffer& buffer) {
  AuxK out;
  if (!loss.dead_mask.defined() || !loss.dead_mask.any().item<bool>()) return out;
  const int64_t B = pass.x.size(0), D = options.d_in;
  at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
  const int64_t n_dead = dead.numel();
  const int64_t half = std::max<int64_t>(D / 2, 1);
  const int64_t k_aux = std::min(half, n_dead);
  const double scale = std::min(static_cast<double>(n_dead) / half, 1.0);
  auto [aux_vals, local] = pass.hidden_pre.index_select(1, dead).topk(k_aux, 1, true, false);
  aux_vals = aux_vals.contiguous();
  out.idx = dead.index_select(0, local.flatten()).view({B, k_aux});
  at::Tensor gap = at::zeros({B, D}, at::kFloat);
  SparseRowsCombine(params.W_dec, out.idx, aux_vals, gap);
  gap.add_(diff);  // recons - (x - x_hat), the residual detached
  const double coefficient = loss.aux_k_coefficient * scale;
  out.loss = coefficient * gap.pow(2).sum(1).mean().item<double>();
  at::Tensor Ga = gap * (2.0 * coefficient / B);
  SparseRowsAccumulate(out.idx, aux_vals, Ga, buffer.W_dec);
  out.dh = SparseRowsDot(params.W_dec, out.idx, Ga);
  return out;
}

// The sparse step (pass.entries: the kept entries by latent). Latent j of matryoshka level l
// (the first width above j) receives the outer gradient G plus the inner gradient of every
// prefix that contains it, G_l + ... + G_{n-2}: one [B,D] signal per level, summed once.
void BatchTopKBackwardSparse(const SaeOptions& options, const SaeParameters& params,
                             const ForwardPass& pass, const LossOptions& loss,
                             StepBuffer& buffer) {
  const LatentEntries& entries = *pass.entries;
  const int64_t B = pass.x.size(0), D = options.d_in, S = entries.latents;
  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();

  std::vector<int64_t> ends = {S};
  if (options.architecture == Architecture::kMatryoshkaBatchTopK &&
      !options.matryoshka_widths.empty()) {
    ends = options.matryoshka_widths;
  }
  const size_t levels = ends.size();
  std::vector<at::Tensor> signal(levels);
  signal[levels - 1] = (diff * (2.0 / B)).contiguous();
  double inner = 0;
  if (levels > 1) {
    at::Tensor partial = params.b_dec.expand({B, D}).clone();
    std::vector<at::Tensor> inner_grads(levels - 1);
    int64_t previous = 0;
    for (size_t i = 0; i + 1 < levels; ++i) {
      LatentEntriesCombine(params.W_dec, entries, entries.value.data(), previous, ends[i],
                           partial);
      at::Tensor d = partial - pass.x;
      inner += d.pow(2).sum(1).mean().item<double>();
      inner_grads[i] = d * (2.0 / B);
      previous = ends[i];
    }
    for (size_t l = levels - 1; l-- > 0;) {
      signal[l] = (signal[l + 1] + inner_grads[l]).contiguous();
    }
  }
  at::sum_out(buffer.b_dec, signal[0], {0});

  const at::Tensor sae_in = pass.sae_in.contiguous();
  const float* xp = sae_in.data_ptr<float>();
  const float* wp = params.W_dec.data_ptr<float>();
  std::vector<const float*> gp(levels);
  for (size_t l = 0; l < levels; ++l) gp[l] = signal[l].data_ptr<float>();
  buffer.W_dec.zero_();
  float* gw = buffer.W_dec.data_ptr<float>();
  float* gb = buffer.b_enc.data_ptr<float>();
  float* fired = buffer.fired.data_ptr<float>();
  const int64_t* start = entries.start.data();
  const int32_t* token = entries.token.data();
  const float* value = entries.value.data();
  const int64_t nnz = entries.nnz();
  ForEachLatentColumn(at::Tensor(), buffer.W_enc, [&](int64_t j, const float*, float* col) {
    const size_t level = std::upper_bound(ends.begin(), ends.end(), j) - ends.begin();
    const float* g = gp[std::min(level, levels - 1)];
    const int64_t e0 = start[j], e1 = start[j + 1];
    fired[j] = static_cast<float>(e1 - e0);
    double b_sum = 0;
    const float* w = wp + j * D;
    float* gw_j = gw + j * D;
    for (int64_t e = e0; e < e1; ++e) {
      if (e + 1 < nnz) {
        PrefetchRow(g + token[e + 1] * D, D);
        PrefetchRow(xp + token[e + 1] * D, D);
      }
      // Kept entries pass the gradient straight to h: dh = g_b . W_dec_j.
      const float dh = VecDotAxpy(g + token[e] * D, w, value[e], gw_j, D);
      VecAxpy(dh, xp + token[e] * D, col, D);
      b_sum += dh;
    }
    gb[j] = static_cast<float>(b_sum);
  });

  const AuxK aux = AuxKLoss(options, params, pass, diff, loss, buffer);
  if (aux.dh.defined()) {
    SparseColumnsAccumulate(sae_in, aux.idx, aux.dh, buffer.W_enc);
    buffer.b_enc.index_add_(0, aux.idx.flatten(), aux.dh.flatten());
  }
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params.W_enc, buffer.b_enc));

  double f_sum = 0;
  for (float v : entries.value) f_sum += v;
  buffer.set_scalar(StepBuffer::kL0TokenSum, static_cast<double>(nnz));
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, f_sum / B);
  buffer.set_scalar(StepBuffer::kAuxSum, aux.loss);
  buffer.set_scalar(StepBuffer::kInnerMseSum, inner);
  buffer.set_scalar(StepBuffer::kLossSum, mse + inner + aux.loss);
}

}  // namespace

void BatchTopKBackward(const SaeOptions& options, const SaeParameters& params,
                       const ForwardPass& pass, const LossOptions& loss, StepBuffer& buffer) {
  if (pass.entries) {
    BatchTopKBackwardSparse(options, params, pass, loss, buffer);
    return;
  }
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
  const AuxK aux_k = AuxKLoss(options, params, pass, diff, loss, buffer);
  const double aux = aux_k.loss;
  if (aux_k.dh.defined()) dh.scatter_add_(1, aux_k.idx, aux_k.dh);

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
