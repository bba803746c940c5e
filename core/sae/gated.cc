#include "core/sae/gated.h"

#include <memory>
#include <vector>

#include "core/sae/sparse_kernels.h"

namespace sae::sparse {

ForwardPass GatedForward(const SaeParameters& params, const at::Tensor& x_in,
                         bool b_dec_in_input, double max_density) {
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = b_dec_in_input;
  pass.sae_in = b_dec_in_input ? pass.x - params.b_dec : pass.x;
  pass.gate_pre = at::addmm(params.b_gate, pass.sae_in, params.W_enc);
  if (max_density >= 0) {
    // The sparse step: the open gates (pi_gate > 0) by latent; the magnitude path's
    // pre-activation only there, pi_mag = sae_in . (W_enc_j exp(r_mag_j)) + b_mag_j.
    const int64_t B = pass.x.size(0), D = pass.x.size(1), S = pass.gate_pre.size(1);
    auto entries = std::make_shared<LatentEntries>();
    const double cap = std::min(max_density, 1.0) * static_cast<double>(B) * S;
    if (CollectLatentEntries(
            pass.gate_pre, static_cast<int64_t>(cap), /*lower=*/nullptr,
            [](float, int64_t) { return true; }, *entries)) {
      pass.gate_pre = at::Tensor();
      const at::Tensor sae_in = pass.sae_in.contiguous();
      const at::Tensor r_exp = params.r_mag.exp();
      const float* xp = sae_in.data_ptr<float>();
      const float* ep = r_exp.data_ptr<float>();
      const float* bm = params.b_mag.data_ptr<float>();
      entries->extra.resize(entries->value.size());
      std::vector<float> f(entries->value.size());
      auto magnitudes = [&](int64_t j, const float* w_enc, float*) {
        const int64_t e0 = entries->start[j], e1 = entries->start[j + 1];
        if (e0 == e1) return;
        std::vector<float> w_mag(D);
        for (int64_t d = 0; d < D; ++d) w_mag[d] = w_enc[d] * ep[j];
        for (int64_t e = e0; e < e1; ++e) {
          const float m = VecDot(xp + entries->token[e] * D, w_mag.data(), D) + bm[j];
          entries->extra[e] = m;
          f[e] = m > 0.0f ? m : 0.0f;
        }
      };
      ForEachLatentColumn(params.W_enc, /*out=*/at::Tensor(), magnitudes);
      pass.x_hat = params.b_dec.expand({B, D}).clone();
      LatentEntriesCombine(params.W_dec, *entries, f.data(), pass.x_hat);
      pass.entries = std::move(entries);
      return pass;
    }
  }
  at::Tensor W_mag = params.W_enc * params.r_mag.exp();
  pass.hidden_pre = at::addmm(params.b_mag, pass.sae_in, W_mag);
  pass.feature_acts = (pass.gate_pre > 0) * at::relu(pass.hidden_pre);
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
  return pass;
}

namespace {

// The sparse step: GatedBackward over the open gates only, one latent at a time.
void GatedBackwardSparse(const SaeParameters& params, const ForwardPass& pass,
                         const LossOptions& loss, StepBuffer& buffer) {
  const LatentEntries& entries = *pass.entries;
  const int64_t B = pass.x.size(0), D = pass.x.size(1), S = entries.latents;
  at::Tensor decoder_norm = params.W_dec.norm(2, {1});  // [S]
  const at::Tensor r_exp = params.r_mag.exp();           // [S]

  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = (diff * (2.0 / B)).contiguous();
  at::sum_out(buffer.b_dec, G, {0});

  // The auxiliary reconstruction relu(pi_gate) W_dec + b_dec of x, over the open gates.
  at::Tensor via_gate = params.b_dec.expand({B, D}).clone();
  LatentEntriesCombine(params.W_dec, entries, entries.value.data(), via_gate);
  via_gate.sub_(pass.x);
  const double aux = via_gate.pow(2).sum(1).mean().item<double>();
  at::Tensor Gv = (via_gate * (2.0 / B)).contiguous();

  const float* np = decoder_norm.data_ptr<float>();
  double l1_sum = 0;
  int64_t active_count = 0;
  for (int64_t j = 0; j < S; ++j) {
    for (int64_t e = entries.start[j]; e < entries.start[j + 1]; ++e) {
      l1_sum += entries.value[e] * np[j];
      active_count += entries.extra[e] > 0.0f;
    }
  }
  const double l1 = l1_sum / B;

  const float l1_grad = static_cast<float>(loss.l1_coefficient / B);
  const at::Tensor sae_in = pass.sae_in.contiguous();
  const float* gp = G.data_ptr<float>();
  const float* vp = Gv.data_ptr<float>();
  const float* xp = sae_in.data_ptr<float>();
  const float* wp = params.W_dec.data_ptr<float>();
  const float* ep = r_exp.data_ptr<float>();
  buffer.W_dec.zero_();
  float* gw = buffer.W_dec.data_ptr<float>();
  float* g_r = buffer.r_mag.data_ptr<float>();
  float* g_mag = buffer.b_mag.data_ptr<float>();
  float* g_gate = buffer.b_gate.data_ptr<float>();
  float* fired = buffer.fired.data_ptr<float>();
  ForEachLatentColumn(params.W_enc, buffer.W_enc, [&](int64_t j, const float* w_enc, float* col) {
    const int64_t e0 = entries.start[j], e1 = entries.start[j + 1];
    g_r[j] = g_mag[j] = g_gate[j] = fired[j] = 0.0f;
    if (e0 == e1) return;
    const float* w = wp + j * D;
    float* gw_j = gw + j * D;
    const float gate_l1 = np[j] * l1_grad;
    std::vector<float> dW_mag(D, 0.0f);
    double mag_sum = 0, gate_sum = 0;
    float fired_j = 0;
    for (int64_t e = e0; e < e1; ++e) {
      if (e + 1 < entries.nnz()) {
        PrefetchRow(vp + entries.token[e + 1] * D, D);
        PrefetchRow(xp + entries.token[e + 1] * D, D);
      }
      const int64_t b = entries.token[e];
      const float* x_b = xp + b * D;
      const float d_gate = VecDot(vp + b * D, w, D) + gate_l1;
      VecAxpy(d_gate, x_b, col, D);
      gate_sum += d_gate;
      const float f = entries.extra[e];
      if (f > 0.0f) {
        const float* g_b = gp + b * D;
        const float d_mag = VecDot(g_b, w, D);
        VecAxpy(f, g_b, gw_j, D);
        VecAxpy(d_mag, x_b, dW_mag.data(), D);
        mag_sum += d_mag;
        fired_j += 1.0f;
      }
    }
    // W_enc feeds both paths; the magnitude path sees column j scaled by exp(r_mag_j).
    double r_sum = 0;
    for (int64_t d = 0; d < D; ++d) {
      col[d] += dW_mag[d] * ep[j];
      r_sum += dW_mag[d] * (w_enc[d] * ep[j]);
    }
    g_r[j] = static_cast<float>(r_sum);
    g_mag[j] = static_cast<float>(mag_sum);
    g_gate[j] = static_cast<float>(gate_sum);
    fired[j] = fired_j;
  });
  if (pass.b_dec_in_input) {
    buffer.b_dec.sub_(at::mv(params.W_enc, r_exp * buffer.b_mag) +
                      at::mv(params.W_enc, buffer.b_gate));
  }

  buffer.set_scalar(StepBuffer::kL0TokenSum, static_cast<double>(active_count));
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, l1);
  buffer.set_scalar(StepBuffer::kAuxSum, aux);
  buffer.set_scalar(StepBuffer::kLossSum, mse + loss.l1_coefficient * l1 + aux);
}

}  // namespace

void GatedBackward(const SaeParameters& params, const ForwardPass& pass, const LossOptions& loss,
                   StepBuffer& buffer) {
  if (pass.entries) {
    GatedBackwardSparse(params, pass, loss, buffer);
    return;
  }
  const at::Tensor& f = pass.feature_acts;
  const int64_t B = pass.x.size(0);
  at::Tensor decoder_norm = params.W_dec.norm(2, {1});  // [S]
  at::Tensor W_mag = params.W_enc * params.r_mag.exp();  // [D,S]

  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = diff * (2.0 / B);
  at::Tensor df = at::mm(G, params.W_dec.t());  // [B,S]
  at::mm_out(buffer.W_dec, f.t(), G);
  at::sum_out(buffer.b_dec, G, {0});

  at::Tensor gate_open = (pass.gate_pre > 0).to(at::kFloat);
  at::Tensor d_mag = df * gate_open * (pass.hidden_pre > 0);  // d loss / d pi_mag

  // Gating path: L1 of relu(pi_gate) weighted by decoder norms, and the auxiliary
  // reconstruction relu(pi_gate) W_dec + b_dec of x with the decoder frozen.
  at::Tensor gate_acts = at::relu(pass.gate_pre);
  const double l1 = (gate_acts * decoder_norm).sum(1).mean().item<double>();
  at::Tensor via_gate = at::addmm(params.b_dec, gate_acts, params.W_dec) - pass.x;
  const double aux = via_gate.pow(2).sum(1).mean().item<double>();
  at::Tensor d_gate = at::mm(via_gate * (2.0 / B), params.W_dec.t());
  d_gate.add_(decoder_norm * (loss.l1_coefficient / B)).mul_(gate_open);

  // W_enc feeds both paths; the magnitude path sees it scaled by exp(r_mag) per column.
  at::Tensor dW_mag = at::mm(pass.sae_in.t(), d_mag);  // [D,S]
  at::mm_out(buffer.W_enc, pass.sae_in.t(), d_gate);
  buffer.W_enc.add_(dW_mag * params.r_mag.exp());
  at::sum_out(buffer.r_mag, dW_mag * W_mag, {0});
  at::sum_out(buffer.b_mag, d_mag, {0});
  at::sum_out(buffer.b_gate, d_gate, {0});
  if (pass.b_dec_in_input) {
    buffer.b_dec.sub_(at::mv(W_mag, buffer.b_mag) + at::mv(params.W_enc, buffer.b_gate));
  }

  at::Tensor active = (f > 0).to(at::kFloat);
  at::sum_out(buffer.fired, active, {0});
  buffer.set_scalar(StepBuffer::kL0TokenSum, active.sum().item<double>());
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, l1);
  buffer.set_scalar(StepBuffer::kAuxSum, aux);
  buffer.set_scalar(StepBuffer::kLossSum, mse + loss.l1_coefficient * l1 + aux);
}

}  // namespace sae::sparse
