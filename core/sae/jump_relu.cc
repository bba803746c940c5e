#include "core/sae/jump_relu.h"

#include <cmath>
#include <memory>

#include "core/sae/sparse_kernels.h"

namespace sae::sparse {

ForwardPass JumpReLUForward(const SaeParameters& params, const at::Tensor& x_in,
                            bool b_dec_in_input, double max_density) {
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = b_dec_in_input;
  pass.sae_in = b_dec_in_input ? pass.x - params.b_dec : pass.x;
  pass.hidden_pre = at::addmm(params.b_enc, pass.sae_in, params.W_enc);
  if (max_density >= 0) {
    // The sparse step: the active entries (h > threshold) decode; the backward reads the
    // estimator's window from hidden_pre.
    const int64_t B = pass.x.size(0), S = pass.hidden_pre.size(1);
    const float* theta = params.threshold.data_ptr<float>();
    auto entries = std::make_shared<LatentEntries>();
    const double cap = std::min(max_density, 1.0) * static_cast<double>(B) * S;
    if (CollectLatentEntries(
            pass.hidden_pre, static_cast<int64_t>(cap), /*lower=*/theta,
            [](float, int64_t) { return true; }, *entries)) {
      pass.x_hat = params.b_dec.expand({B, pass.x.size(1)}).clone();
      LatentEntriesCombine(params.W_dec, *entries, entries->value.data(), pass.x_hat);
      pass.entries = std::move(entries);
      return pass;
    }
  }
  pass.feature_acts = pass.hidden_pre * (pass.hidden_pre > params.threshold);
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
  return pass;
}

namespace {

// The sparse step: JumpReLUBackward over the entries that carry a gradient (active, or inside
// the estimator's window), one latent at a time; the pre-activation loss stays dense over the
// dead latents' columns.
void JumpReLUBackwardSparse(const SaeParameters& params, const ForwardPass& pass,
                            const LossOptions& loss, StepBuffer& buffer) {
  const at::Tensor& h = pass.hidden_pre;
  const at::Tensor& theta = params.threshold;
  const int64_t B = pass.x.size(0), D = pass.x.size(1);
  const double bandwidth = loss.jumprelu_bandwidth;
  const double c = loss.l0_coefficient;
  const bool tanh_loss = loss.jumprelu_sparsity_loss == config::JumpReLUSparsityLoss::kTanh;
  const bool quadratic = loss.jumprelu_sparsity_loss == config::JumpReLUSparsityLoss::kQuadratic;
  at::Tensor decoder_norm = params.W_dec.norm(2, {1});  // [S]

  // The entries: h > theta, or |h - theta| / bandwidth < 1/2 (the rectangle kernel's window).
  const float* th = theta.data_ptr<float>();
  const float bw = static_cast<float>(bandwidth);
  auto in_window = [bw](float v, float t) { return std::fabs((v - t) / bw) < 0.5f; };
  // Both imply h > theta - bandwidth, the scan's vectorised bound.
  const at::Tensor lower = (theta - bandwidth).contiguous();
  LatentEntries entries;
  CollectLatentEntries(
      h, B * h.size(1), lower.data_ptr<float>(),
      [th, in_window](float v, int64_t j) { return v > th[j] || in_window(v, th[j]); },
      entries);

  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = (diff * (2.0 / B)).contiguous();
  at::sum_out(buffer.b_dec, G, {0});

  // Per-token L0 (the quadratic loss weighs each token's step estimator by it).
  const int64_t S = entries.latents;
  std::vector<float> l0_per_token(B, 0.0f);
  int64_t active_count = 0;
  double f_abs_sum = 0;
  for (int64_t j = 0; j < S; ++j) {
    for (int64_t e = entries.start[j]; e < entries.start[j + 1]; ++e) {
      if (entries.value[e] > th[j]) {
        l0_per_token[entries.token[e]] += 1.0f;
        active_count += entries.value[e] != 0.0f;
        f_abs_sum += std::fabs(entries.value[e]);
      }
    }
  }
  double l0_loss = 0;
  std::vector<float> token_factor;
  if (quadratic) {
    const double T = loss.target_l0;
    token_factor.resize(B);
    double sum = 0;
    for (int64_t b = 0; b < B; ++b) {
      const float gap = l0_per_token[b] - static_cast<float>(T);
      sum += gap * gap * (2.0 / T);
      token_factor[b] = gap * static_cast<float>(4.0 / T);
    }
    l0_loss = c * sum / B;
  } else if (!tanh_loss) {
    l0_loss = c * static_cast<double>(active_count) / B;
  }

  const float window_value = 1.0f * static_cast<float>(1.0 / bandwidth);
  const float tanh_scale = static_cast<float>(loss.jumprelu_tanh_scale);
  const float tanh_grad = static_cast<float>(c * loss.jumprelu_tanh_scale / B);
  const float step_grad = static_cast<float>(c / B);
  const bool ste = loss.jumprelu_ste_to_input;
  const at::Tensor sae_in = pass.sae_in.contiguous();
  const float* gp = G.data_ptr<float>();
  const float* xp = sae_in.data_ptr<float>();
  const float* wp = params.W_dec.data_ptr<float>();
  const float* np = decoder_norm.data_ptr<float>();
  buffer.W_dec.zero_();
  float* gw = buffer.W_dec.data_ptr<float>();
  float* gb = buffer.b_enc.data_ptr<float>();
  float* gt = buffer.threshold.data_ptr<float>();
  float* fired = buffer.fired.data_ptr<float>();
  std::vector<double> tanh_sums(S, 0.0);
  ForEachLatentColumn(at::Tensor(), buffer.W_enc, [&](int64_t j, const float*, float* col) {
    const float t_j = th[j], norm = np[j];
    const float* w = wp + j * D;
    float* gw_j = gw + j * D;
    double b_sum = 0, dtheta = 0, tanh_sum = 0;
    float fired_j = 0;
    for (int64_t e = entries.start[j]; e < entries.start[j + 1]; ++e) {
      if (e + 1 < entries.nnz()) {
        PrefetchRow(gp + entries.token[e + 1] * D, D);
        PrefetchRow(xp + entries.token[e + 1] * D, D);
      }
      const int64_t b = entries.token[e];
      const float v = entries.value[e];
      const bool above = v > t_j;
      const float window = in_window(v, t_j) ? window_value : 0.0f;
      const float f = above ? v : 0.0f;
      const float* g_b = gp + b * D;
      float df = VecDot(g_b, w, D);
      if (tanh_loss) {
        const float t = std::tanh(f * norm * tanh_scale);
        tanh_sum += t;
        df += (1 - t * t) * norm * tanh_grad;
      }
      const float estimator = window * t_j * df;
      float dh = above ? df : 0.0f;
      dtheta -= estimator;
      if (ste) dh += estimator;
      if (!tanh_loss) {
        float sg = window * step_grad;
        if (quadratic) sg *= token_factor[b];
        dtheta -= sg;
        if (ste) dh += sg;
      }
      if (f != 0.0f) {
        VecAxpy(f, g_b, gw_j, D);
        fired_j += 1.0f;
      }
      if (dh != 0.0f) {
        VecAxpy(dh, xp + b * D, col, D);
        b_sum += dh;
      }
    }
    gb[j] = static_cast<float>(b_sum);
    gt[j] = static_cast<float>(dtheta);
    fired[j] = fired_j;
    tanh_sums[j] = tanh_sum;
  });
  if (tanh_loss) {
    double sum = 0;
    for (double t : tanh_sums) sum += t;
    l0_loss = c * sum / B;
  }

  double pre_act = 0;
  if (loss.pre_act_loss_coefficient && loss.dead_mask.defined() &&
      loss.dead_mask.any().item<bool>()) {
    // As JumpReLUBackward, over the dead latents' columns only.
    const double p = *loss.pre_act_loss_coefficient;
    at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
    at::Tensor weight = decoder_norm.index_select(0, dead);                   // [Nd]
    at::Tensor gap = theta.index_select(0, dead) - h.index_select(1, dead);  // [B,Nd]
    pre_act = p * (at::relu(gap) * weight).sum(1).mean().item<double>();
    at::Tensor g = (gap > 0).to(at::kFloat) * weight * (p / B);
    buffer.W_enc.index_add_(1, dead, at::mm(sae_in.t(), g).neg_());
    at::Tensor g_sum = g.sum(0);
    buffer.b_enc.index_add_(0, dead, g_sum.neg());
    buffer.threshold.index_add_(0, dead, g_sum);
  }

  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params.W_enc, buffer.b_enc));
  buffer.set_scalar(StepBuffer::kL0TokenSum, static_cast<double>(active_count));
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, f_abs_sum / B);
  buffer.set_scalar(StepBuffer::kL0LossSum, l0_loss);
  buffer.set_scalar(StepBuffer::kPreActSum, pre_act);
  buffer.set_scalar(StepBuffer::kLossSum, mse + l0_loss + pre_act);
}

}  // namespace

void JumpReLUBackward(const SaeParameters& params, const ForwardPass& pass,
                      const LossOptions& loss, StepBuffer& buffer) {
  if (pass.entries) {
    JumpReLUBackwardSparse(params, pass, loss, buffer);
    return;
  }
  const at::Tensor& h = pass.hidden_pre;
  const at::Tensor& f = pass.feature_acts;
  const at::Tensor& theta = params.threshold;
  const int64_t B = pass.x.size(0);
  const double bandwidth = loss.jumprelu_bandwidth;
  const double c = loss.l0_coefficient;
  at::Tensor decoder_norm = params.W_dec.norm(2, {1});  // [S]

  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = diff * (2.0 / B);
  at::Tensor df = at::mm(G, params.W_dec.t());  // [B,S]
  at::mm_out(buffer.W_dec, f.t(), G);
  at::sum_out(buffer.b_dec, G, {0});

  at::Tensor above = (h > theta).to(at::kFloat);
  // Rectangle kernel K((h - theta) / bandwidth) / bandwidth: 1 / bandwidth inside the window.
  at::Tensor window = (((h - theta) / bandwidth).abs() < 0.5).to(at::kFloat) * (1.0 / bandwidth);

  double l0_loss = 0;
  if (loss.jumprelu_sparsity_loss == config::JumpReLUSparsityLoss::kTanh) {
    // l0_loss = c * mean_b sum_j tanh(scale * f_j * ||W_dec_j||): a function of f.
    at::Tensor t = at::tanh(f * decoder_norm * loss.jumprelu_tanh_scale);
    l0_loss = c * t.sum(1).mean().item<double>();
    df.add_((1 - t * t) * decoder_norm * (c * loss.jumprelu_tanh_scale / B));
  }

  // Through f = h * 1[h > theta]: d/dh = 1[h > theta]; d/dtheta by the estimator
  // -(theta / bandwidth) K(...) summed over the batch.
  at::Tensor estimator = window * theta * df;  // [B,S]
  at::Tensor dh = above * df;
  at::Tensor dtheta = -estimator.sum(0);
  if (loss.jumprelu_ste_to_input) dh.add_(estimator);

  if (loss.jumprelu_sparsity_loss != config::JumpReLUSparsityLoss::kTanh) {
    // step: l0_loss = c * mean_b L0_b, L0_b = sum_j 1[h > theta]; the step's estimator:
    // -K(...) / bandwidth. quadratic: c * mean_b 2 / T * (L0_b - T)^2, whose derivative in L0_b
    // 4 / T * (L0_b - T) weighs token b's estimator.
    at::Tensor l0_per_token = above.sum(1);  // [B]
    at::Tensor step_grad = window * (c / B);
    if (loss.jumprelu_sparsity_loss == config::JumpReLUSparsityLoss::kQuadratic) {
      const double T = loss.target_l0;
      at::Tensor gap = l0_per_token - T;
      l0_loss = c * (gap * gap * (2.0 / T)).mean().item<double>();
      step_grad.mul_((gap * (4.0 / T)).unsqueeze(1));
    } else {
      l0_loss = c * l0_per_token.mean().item<double>();
    }
    dtheta.sub_(step_grad.sum(0));
    if (loss.jumprelu_ste_to_input) dh.add_(step_grad);
  }

  double pre_act = 0;
  if (loss.pre_act_loss_coefficient && loss.dead_mask.defined() &&
      loss.dead_mask.any().item<bool>()) {
    // pre_act_loss = p * mean_b sum_j relu(theta_j - h_j) * dead_j * ||W_dec_j||.
    const double p = *loss.pre_act_loss_coefficient;
    at::Tensor weight = loss.dead_mask.to(at::kFloat) * decoder_norm;  // [S]
    at::Tensor gap = theta - h;
    pre_act = p * (at::relu(gap) * weight).sum(1).mean().item<double>();
    at::Tensor g = (gap > 0).to(at::kFloat) * weight * (p / B);
    dh.sub_(g);
    dtheta.add_(g.sum(0));
  }

  at::mm_out(buffer.W_enc, pass.sae_in.t(), dh);
  at::sum_out(buffer.b_enc, dh, {0});
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params.W_enc, buffer.b_enc));
  buffer.threshold.copy_(dtheta);

  at::Tensor active = (f != 0).to(at::kFloat);
  at::sum_out(buffer.fired, active, {0});
  buffer.set_scalar(StepBuffer::kL0TokenSum, active.sum().item<double>());
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, f.abs().sum().item<double>() / B);
  buffer.set_scalar(StepBuffer::kL0LossSum, l0_loss);
  buffer.set_scalar(StepBuffer::kPreActSum, pre_act);
  buffer.set_scalar(StepBuffer::kLossSum, mse + l0_loss + pre_act);
}

}  // namespace sae::sparse
