#include "core/sae/gated.h"

namespace sae::sparse {

ForwardPass GatedForward(const SaeParameters& params, const at::Tensor& x_in,
                         bool b_dec_in_input) {
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = b_dec_in_input;
  pass.sae_in = b_dec_in_input ? pass.x - params.b_dec : pass.x;
  pass.gate_pre = at::addmm(params.b_gate, pass.sae_in, params.W_enc);
  at::Tensor W_mag = params.W_enc * params.r_mag.exp();
  pass.hidden_pre = at::addmm(params.b_mag, pass.sae_in, W_mag);
  pass.feature_acts = (pass.gate_pre > 0) * at::relu(pass.hidden_pre);
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
  return pass;
}

void GatedBackward(const SaeParameters& params, const ForwardPass& pass, const LossOptions& loss,
                   StepBuffer& buffer) {
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
