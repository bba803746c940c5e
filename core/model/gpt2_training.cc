#include "core/model/gpt2_training.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sae::model {
namespace {

at::Tensor Leaf(const at::Tensor& t) { return t.detach().clone().contiguous().requires_grad_(); }

}  // namespace

Gpt2TrainingModel::Gpt2TrainingModel(const Gpt2Weights& w) {
  weights_.config = w.config;
  weights_.tied_lm_head = w.tied_lm_head;
  weights_.wte = Leaf(w.wte);
  weights_.wpe = Leaf(w.wpe);
  for (const Gpt2BlockWeights& b : w.blocks) {
    Gpt2BlockWeights c;
    c.ln_1_weight = Leaf(b.ln_1_weight);
    c.ln_1_bias = Leaf(b.ln_1_bias);
    c.attn_c_attn_weight = Leaf(b.attn_c_attn_weight);
    c.attn_c_attn_bias = Leaf(b.attn_c_attn_bias);
    c.attn_c_proj_weight = Leaf(b.attn_c_proj_weight);
    c.attn_c_proj_bias = Leaf(b.attn_c_proj_bias);
    c.ln_2_weight = Leaf(b.ln_2_weight);
    c.ln_2_bias = Leaf(b.ln_2_bias);
    c.mlp_c_fc_weight = Leaf(b.mlp_c_fc_weight);
    c.mlp_c_fc_bias = Leaf(b.mlp_c_fc_bias);
    c.mlp_c_proj_weight = Leaf(b.mlp_c_proj_weight);
    c.mlp_c_proj_bias = Leaf(b.mlp_c_proj_bias);
    weights_.blocks.push_back(std::move(c));
  }
  weights_.ln_f_weight = Leaf(w.ln_f_weight);
  weights_.ln_f_bias = Leaf(w.ln_f_bias);
  weights_.lm_head = w.tied_lm_head ? weights_.wte : Leaf(w.lm_head);
}

at::Tensor Gpt2TrainingModel::Hidden(const at::Tensor& tokens_in) const {
  const Gpt2Config& c = weights_.config;
  const Gpt2Weights& w = weights_;
  TORCH_CHECK(tokens_in.dim() == 2 && tokens_in.size(1) <= c.n_positions,
              "tokens must be [B,T] with T <= n_positions");
  at::Tensor tokens = tokens_in.to(at::kLong);
  const int64_t B = tokens.size(0), T = tokens.size(1);
  const int64_t D = c.n_embd, H = c.n_head, dh = c.d_head(), M = c.d_mlp();
  const double eps = c.layer_norm_epsilon;
  const bool tanh_gelu = c.activation_function != "gelu";

  // (B,T,D) residual stream.
  at::Tensor resid = at::embedding(w.wte, tokens) + w.wpe.narrow(0, 0, T).unsqueeze(0);
  // (T,T) additive causal mask: 0 on and below the diagonal, -inf above.
  at::Tensor causal = at::full({T, T}, -std::numeric_limits<double>::infinity(),
                               w.wte.options().requires_grad(false))
                           .triu(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  for (const Gpt2BlockWeights& b : w.blocks) {
    at::Tensor y = at::layer_norm(resid, {D}, b.ln_1_weight, b.ln_1_bias, eps);
    at::Tensor qkv = at::addmm(b.attn_c_attn_bias, y.reshape({B * T, D}), b.attn_c_attn_weight)
                         .view({B, T, 3, H, dh});
    at::Tensor q = qkv.select(2, 0).permute({0, 2, 1, 3}).reshape({B * H, T, dh});
    at::Tensor k = qkv.select(2, 1).permute({0, 2, 3, 1}).reshape({B * H, dh, T});
    at::Tensor v = qkv.select(2, 2).permute({0, 2, 1, 3}).reshape({B * H, T, dh});
    at::Tensor pattern = at::softmax(at::baddbmm(causal, q, k, /*beta=*/1, /*alpha=*/scale), -1);
    at::Tensor z = at::bmm(pattern, v).view({B, H, T, dh}).permute({0, 2, 1, 3});  // (B,T,H,dh)
    resid = resid + at::addmm(b.attn_c_proj_bias, z.reshape({B * T, D}), b.attn_c_proj_weight)
                        .view({B, T, D});
    y = at::layer_norm(resid, {D}, b.ln_2_weight, b.ln_2_bias, eps);
    at::Tensor pre = at::addmm(b.mlp_c_fc_bias, y.reshape({B * T, D}), b.mlp_c_fc_weight);
    at::Tensor post = tanh_gelu ? at::gelu(pre, "tanh") : at::gelu(pre);
    resid = resid + at::addmm(b.mlp_c_proj_bias, post, b.mlp_c_proj_weight).view({B, T, D});
    (void)M;
  }
  return at::layer_norm(resid, {D}, w.ln_f_weight, w.ln_f_bias, eps);
}

at::Tensor Gpt2TrainingModel::Logits(const at::Tensor& tokens) const {
  return at::matmul(Hidden(tokens), weights_.lm_head.t());
}

at::Tensor Gpt2TrainingModel::Loss(const at::Tensor& tokens) const {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  TORCH_CHECK(T >= 2, "a loss needs at least 2 positions");
  // Only the T-1 positions that predict something go through the unembedding, the costliest
  // matrix of a small GPT-2.
  at::Tensor y = Hidden(tokens).narrow(1, 0, T - 1).reshape({B * (T - 1), config().n_embd});
  at::Tensor logits = at::mm(y, weights_.lm_head.t());  // (B*(T-1), V)
  at::Tensor targets = tokens.narrow(1, 1, T - 1).reshape({-1}).to(at::kLong);
  return at::cross_entropy_loss(logits, targets);
}

double Gpt2TrainingModel::ChunkedLoss(const at::Tensor& hidden, const at::Tensor& targets,
                                      int64_t chunk_rows, at::Tensor* grad_hidden,
                                      at::Tensor* grad_unembedding) const {
  at::NoGradGuard no_grad;
  const int64_t N = hidden.size(0);
  const int64_t V = weights_.lm_head.size(0);
  const at::Tensor w = weights_.lm_head.detach();  // [V,D]
  chunk_rows = std::max<int64_t>(1, std::min(chunk_rows, N));
  at::Tensor buffer = at::empty({chunk_rows, V}, hidden.options());
  at::Tensor loss_sum = at::zeros({}, hidden.options());
  for (int64_t i = 0; i < N; i += chunk_rows) {
    const int64_t c = std::min(chunk_rows, N - i);
    at::Tensor logits = buffer.narrow(0, 0, c);  // (c,V)
    at::Tensor h = hidden.narrow(0, i, c);
    at::Tensor target = targets.narrow(0, i, c).unsqueeze(1);  // (c,1)
    at::mm_out(logits, h, w.t());
    at::Tensor max = std::get<0>(logits.max(1, /*keepdim=*/true));
    logits.sub_(max);
    at::Tensor target_logit = logits.gather(1, target);
    logits.exp_();
    at::Tensor sum = logits.sum(1, /*keepdim=*/true);
    loss_sum.add_((sum.log() - target_logit).sum());
    if (grad_hidden == nullptr) continue;
    // d(mean loss)/d(logits) = (softmax - one_hot(target)) / N.
    logits.div_(sum);
    logits.scatter_add_(1, target, at::full({c, 1}, -1.0, logits.options()));
    logits.mul_(1.0 / static_cast<double>(N));
    at::Tensor grad_h = grad_hidden->narrow(0, i, c);
    at::mm_out(grad_h, logits, w);
    grad_unembedding->addmm_(logits.t(), h);
  }
  return loss_sum.item<double>();
}

double Gpt2TrainingModel::LossAndBackward(const at::Tensor& tokens, int64_t chunk_rows) const {
  const int64_t B = tokens.size(0), T = tokens.size(1);
  TORCH_CHECK(T >= 2, "a loss needs at least 2 positions");
  const int64_t N = B * (T - 1);
  at::Tensor hidden = Hidden(tokens).narrow(1, 0, T - 1).reshape({N, config().n_embd});
  at::Tensor targets = tokens.narrow(1, 1, T - 1).reshape({-1}).to(at::kLong);
  at::Tensor grad_hidden = at::empty(hidden.sizes(), hidden.options().requires_grad(false));
  at::Tensor grad_unembedding = at::zeros_like(weights_.lm_head.detach());
  const double sum =
      ChunkedLoss(hidden.detach(), targets, chunk_rows, &grad_hidden, &grad_unembedding);
  hidden.backward(grad_hidden);
  at::NoGradGuard no_grad;
  at::Tensor& grad = weights_.lm_head.mutable_grad();
  if (grad.defined()) {
    grad.add_(grad_unembedding);
  } else {
    grad = grad_unembedding;
  }
  return sum / static_cast<double>(N);
}

double Gpt2TrainingModel::LossWithoutGradients(const at::Tensor& tokens,
                                               int64_t chunk_rows) const {
  at::NoGradGuard no_grad;
  const int64_t B = tokens.size(0), T = tokens.size(1);
  TORCH_CHECK(T >= 2, "a loss needs at least 2 positions");
  const int64_t N = B * (T - 1);
  at::Tensor hidden = Hidden(tokens).narrow(1, 0, T - 1).reshape({N, config().n_embd});
  at::Tensor targets = tokens.narrow(1, 1, T - 1).reshape({-1}).to(at::kLong);
  return ChunkedLoss(hidden, targets, chunk_rows, nullptr, nullptr) / static_cast<double>(N);
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, AdamWOptions options)
    : options_(options) {
  for (auto& [name, p] : parameters) {
    Slot s;
    s.name = name;
    s.param = p;
    s.exp_avg = at::zeros_like(p.detach());
    s.exp_avg_sq = at::zeros_like(p.detach());
    s.decay = p.dim() >= 2;
    slots_.push_back(std::move(s));
  }
}

bool AdamW::Decays(const std::string& name) const {
  for (const Slot& s : slots_) {
    if (s.name == name) return s.decay;
  }
  return false;
}

double AdamW::Step(double lr) {
  at::NoGradGuard no_grad;
  // clip_grad_norm_: the norm of the per-tensor norms, then one common factor.
  std::vector<at::Tensor> norms;
  for (const Slot& s : slots_) {
    if (s.param.grad().defined()) norms.push_back(s.param.grad().norm(2));
  }
  double total_norm = 0;
  if (!norms.empty()) total_norm = at::stack(norms).norm(2).item<double>();
  if (options_.max_grad_norm > 0) {
    const double coef = std::min(1.0, options_.max_grad_norm / (total_norm + 1e-6));
    for (Slot& s : slots_) {
      if (s.param.grad().defined()) s.param.mutable_grad().mul_(coef);
    }
  }
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias_correction1 = 1 - std::pow(b1, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(b2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (Slot& s : slots_) {
    if (!s.param.grad().defined()) continue;
    const at::Tensor& g = s.param.grad();
    at::Tensor p = s.param.detach();
    if (s.decay && options_.weight_decay != 0) p.mul_(1 - lr * options_.weight_decay);
    s.exp_avg.lerp_(g, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2);
    at::Tensor denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
    p.addcdiv_(s.exp_avg, denom, -step_size);
    s.param.mutable_grad() = at::Tensor();
  }
  return total_norm;
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::State() const {
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const Slot& s : slots_) state.emplace_back("exp_avg." + s.name, s.exp_avg);
  for (const Slot& s : slots_) state.emplace_back("exp_avg_sq." + s.name, s.exp_avg_sq);
  return state;
}

absl::Status AdamW::Restore(const std::map<std::string, at::Tensor>& state, int64_t step) {
  for (Slot& s : slots_) {
    for (auto [prefix, slot] : {std::pair<const char*, at::Tensor*>{"exp_avg.", &s.exp_avg},
                                {"exp_avg_sq.", &s.exp_avg_sq}}) {
      const std::string key = prefix + s.name;
      auto it = state.find(key);
      if (it == state.end()) {
        return absl::InvalidArgumentError(absl::StrCat("optimiser state lacks '", key, "'"));
      }
      if (it->second.sizes() != slot->sizes()) {
        return absl::InvalidArgumentError(
            absl::StrCat("optimiser state '", key, "' has shape [",
                         absl::StrJoin(it->second.sizes(), ","), "], expected [",
                         absl::StrJoin(slot->sizes(), ","), "]"));
      }
      slot->copy_(it->second);
    }
  }
  step_ = step;
  return absl::OkStatus();
}

double LearningRateSchedule::At(int64_t step) const {
  if (step < warmup_steps) {
    return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - 1 - warmup_steps);
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  return min + 0.5 * (1 + std::cos(M_PI * progress)) * (peak - min);
}

}  // namespace sae::model
