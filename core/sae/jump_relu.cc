#include "core/sae/jump_relu.h"

namespace sae::sparse {

ForwardPass JumpReLUForward(const SaeParameters& params, const at::Tensor& x_in,
                            bool b_dec_in_input) {
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = b_dec_in_input;
  pass.sae_in = b_dec_in_input ? pass.x - params.b_dec : pass.x;
  pass.hidden_pre = at::addmm(params.b_enc, pass.sae_in, params.W_enc);
  pass.feature_acts = pass.hidden_pre * (pass.hidden_pre > params.threshold);
  pass.x_hat = at::addmm(params.b_dec, pass.feature_acts, params.W_dec);
  return pass;
}

void JumpReLUBackward(const SaeParameters& params, const ForwardPass& pass,
                      const LossOptions& loss, StepBuffer& buffer) {
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
