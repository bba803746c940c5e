// Finite-difference checks of every loss term's hand-written gradient.
//
// Ghost gradients and AuxK contain stop-gradients (the norm rescaling, the loss rescaling and
// the residual target are detached), so their value is not the function whose gradient they
// define. For those terms the check differentiates the surrogate in which the detached
// quantities are frozen at their values for the unperturbed parameters, written here from
// docs/definitions.md.
#include <gtest/gtest.h>

#include <functional>

#include "core/sae/sparse_autoencoder.h"

namespace sae::sparse {
namespace {

constexpr int64_t kDIn = 6, kDSae = 12, kBatch = 10;

struct Evaluation {
  double loss = 0;
  std::vector<at::Tensor> grads;
};

SaeParameters Clone(const SaeParameters& p) {
  return {p.W_enc.clone(), p.b_enc.clone(), p.W_dec.clone(), p.b_dec.clone()};
}

Evaluation Evaluate(const SaeOptions& options, const SaeParameters& params, const at::Tensor& x,
                    const LossOptions& loss) {
  SparseAutoencoder sae(options, Clone(params));
  ForwardPass pass = sae.Forward(x, /*keep_hidden_pre=*/true);
  at::Tensor sums = SparseAutoencoder::MomentSums(pass) / static_cast<double>(x.size(0));
  StepBuffer buffer(options.d_in, options.d_sae);
  sae.Backward(pass, {sums[0], sums[1]}, loss, buffer);
  Evaluation e;
  e.loss = buffer.scalar(StepBuffer::kLossSum);
  for (const at::Tensor& g : buffer.gradients()) e.grads.push_back(g.clone());
  return e;
}

// Compares <grad, v> with the central difference of `f` along a random direction v, for each
// parameter tensor in turn.
void ExpectDirectionalDerivativesMatch(const SaeParameters& params,
                                       const std::vector<at::Tensor>& grads,
                                       const std::function<double(const SaeParameters&)>& f,
                                       const char* label) {
  const char* names[] = {"W_enc", "b_enc", "W_dec", "b_dec"};
  for (int i = 0; i < 4; ++i) {
    for (int trial = 0; trial < 3; ++trial) {
      at::Tensor v = at::randn_like(params.List()[i]);
      v /= v.norm();
      const double eps = 1e-3;
      SaeParameters plus = Clone(params), minus = Clone(params);
      plus.List()[i].add_(v * eps);
      minus.List()[i].sub_(v * eps);
      double numeric = (f(plus) - f(minus)) / (2 * eps);
      double analytic = (grads[i] * v).sum().item<double>();
      // 2% relative, plus the float32 rounding of the loss seen through a 2e-3 step.
      double scale = std::max(std::abs(numeric), std::abs(analytic));
      EXPECT_NEAR(analytic, numeric, 2e-2 * scale + 2e-4)
          << label << " d/d" << names[i] << " trial " << trial;
    }
  }
}

class GradientCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(21);
    x_ = at::randn({kBatch, kDIn}) * 1.5 + 0.3;
    standard_.architecture = Architecture::kStandard;
    standard_.d_in = kDIn;
    standard_.d_sae = kDSae;
    topk_ = standard_;
    topk_.architecture = Architecture::kTopK;
    topk_.k = 3;
    params_ = SparseAutoencoder(standard_, 3).params();
    params_.b_enc = at::randn({kDSae}) * 0.1;
    params_.b_dec = at::randn({kDIn}) * 0.2;
    dead_ = at::zeros({kDSae}, at::kBool);
    dead_.narrow(0, 0, 5).fill_(true);
  }

  at::Tensor x_;
  SaeOptions standard_, topk_;
  SaeParameters params_;
  at::Tensor dead_;
};

TEST_F(GradientCheckTest, NormalisedMseGradientMatchesFiniteDifferences) {
  LossOptions loss;
  loss.l1_coefficient = 0;
  Evaluation base = Evaluate(standard_, params_, x_, loss);
  ExpectDirectionalDerivativesMatch(
      params_, base.grads,
      [&](const SaeParameters& p) { return Evaluate(standard_, p, x_, loss).loss; }, "mse");
}

// apply_b_dec_to_input false: the encoder reads x, so b_dec's gradient has no encoder term.
// The finite differences are taken of a float64 reference of the loss (the engine's float32 loss
// moves by a few ulps over a 2e-3 step, which is the size of the difference being checked); for
// TopK the selected latents are frozen at the unperturbed point, as a small step keeps them.
TEST_F(GradientCheckTest, GradientsWithoutDecoderBiasOnTheInputMatchFiniteDifferences) {
  auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  const at::Tensor x = f64(x_);
  for (SaeOptions options : {standard_, topk_}) {
    const bool topk = options.architecture == Architecture::kTopK;
    options.apply_b_dec_to_input = false;
    LossOptions loss;
    loss.l1_coefficient = 0;  // the L1 term has its own check; here the encoder's input changes
    Evaluation base = Evaluate(options, params_, x_, loss);
    Evaluation applied = Evaluate(topk ? topk_ : standard_, params_, x_, loss);
    EXPECT_FALSE(at::allclose(base.grads[3], applied.grads[3])) << "b_dec's gradient must differ";

    at::Tensor chosen;
    if (topk) {
      SparseAutoencoder sae(options, Clone(params_));
      chosen = sae.Forward(x_, /*keep_hidden_pre=*/true).topk_indices;
    }
    auto reference = [&](const SaeParameters& p) {
      at::Tensor h = at::matmul(x, f64(p.W_enc)) + f64(p.b_enc);  // no b_dec on the input
      at::Tensor acts = topk ? at::zeros_like(h).scatter_(1, chosen, at::relu(h.gather(1, chosen)))
                             : at::relu(h);
      at::Tensor x_hat = at::matmul(acts, f64(p.W_dec)) + f64(p.b_dec);
      if (topk) return (x_hat - x).pow(2).sum(1).mean().item<double>();
      return ((x_hat - x).pow(2) / (x - x.mean(0)).norm(2, {1}, true)).mean().item<double>();
    };
    const char* label = topk ? "topk without b_dec on the input" : "without b_dec on the input";
    EXPECT_NEAR(reference(params_), base.loss, 1e-5 * std::abs(base.loss)) << label;
    ExpectDirectionalDerivativesMatch(params_, base.grads, reference, label);
  }
}

TEST_F(GradientCheckTest, L1PenaltyGradientMatchesFiniteDifferences) {
  LossOptions with_l1, without;
  with_l1.l1_coefficient = 0.5;
  without.l1_coefficient = 0;
  Evaluation a = Evaluate(standard_, params_, x_, with_l1);
  Evaluation b = Evaluate(standard_, params_, x_, without);
  std::vector<at::Tensor> l1_grads;
  for (int i = 0; i < 4; ++i) l1_grads.push_back(a.grads[i] - b.grads[i]);
  ExpectDirectionalDerivativesMatch(
      params_, l1_grads,
      [&](const SaeParameters& p) {
        return Evaluate(standard_, p, x_, with_l1).loss - Evaluate(standard_, p, x_, without).loss;
      },
      "l1");
}

TEST_F(GradientCheckTest, GhostGradientMatchesFiniteDifferencesOfItsSurrogate) {
  LossOptions ghost, plain;
  ghost.l1_coefficient = plain.l1_coefficient = 0.01;
  ghost.use_ghost_grads = true;
  ghost.dead_mask = dead_;
  Evaluation a = Evaluate(standard_, params_, x_, ghost);
  Evaluation b = Evaluate(standard_, params_, x_, plain);
  std::vector<at::Tensor> ghost_grads;
  for (int i = 0; i < 4; ++i) ghost_grads.push_back(a.grads[i] - b.grads[i]);
  ASSERT_GT(a.loss - b.loss, 0);

  // Frozen (detached) quantities at the base point, in float64.
  auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble); };
  at::Tensor x = f64(x_);
  at::Tensor dead = dead_.nonzero().squeeze(1);
  auto forward = [&](const SaeParameters& p) {
    at::Tensor h = at::matmul(x - f64(p.b_dec), f64(p.W_enc)) + f64(p.b_enc);
    at::Tensor x_hat = at::matmul(at::relu(h), f64(p.W_dec)) + f64(p.b_dec);
    return std::make_pair(h, x_hat);
  };
  auto [h0, x_hat0] = forward(params_);
  at::Tensor r = x - x_hat0;
  at::Tensor mse_elem = (x_hat0 - x).pow(2) / (x - x.mean(0)).norm(2, {1}, true);
  at::Tensor g0 =
      at::matmul(h0.index_select(1, dead).exp(), f64(params_.W_dec).index_select(0, dead));
  at::Tensor s = r.norm(2, {1}, true) / (1e-6 + 2 * g0.norm(2, {1}, true));
  at::Tensor rc_norm = (r - r.mean(0)).norm(2, {1}, true);
  at::Tensor c = mse_elem / ((g0 * s - r).pow(2) / rc_norm + 1e-6);
  auto surrogate = [&](const SaeParameters& p) {
    at::Tensor h = forward(p).first;
    at::Tensor g =
        at::matmul(h.index_select(1, dead).exp(), f64(p.W_dec).index_select(0, dead)) * s;
    return (c * (g - r).pow(2) / rc_norm).mean().item<double>();
  };
  EXPECT_NEAR(surrogate(params_), a.loss - b.loss, 1e-4 * (a.loss - b.loss));
  ExpectDirectionalDerivativesMatch(params_, ghost_grads, surrogate, "ghost");
}

TEST_F(GradientCheckTest, TopKMseGradientMatchesFiniteDifferences) {
  SaeParameters p = SparseAutoencoder(topk_, 5).params();
  p.b_dec = at::randn({kDIn}) * 0.2;
  LossOptions loss;
  Evaluation base = Evaluate(topk_, p, x_, loss);
  ExpectDirectionalDerivativesMatch(
      p, base.grads, [&](const SaeParameters& q) { return Evaluate(topk_, q, x_, loss).loss; },
      "topk mse");
}

TEST_F(GradientCheckTest, AuxKGradientMatchesFiniteDifferencesOfItsSurrogate) {
  SaeParameters p = SparseAutoencoder(topk_, 6).params();
  p.b_dec = at::randn({kDIn}) * 0.2;
  LossOptions aux, plain;
  aux.dead_mask = dead_;
  aux.aux_k_coefficient = 0.5;
  Evaluation a = Evaluate(topk_, p, x_, aux);
  Evaluation b = Evaluate(topk_, p, x_, plain);
  std::vector<at::Tensor> aux_grads;
  for (int i = 0; i < 4; ++i) aux_grads.push_back(a.grads[i] - b.grads[i]);

  // Frozen: the residual target and which dead latents are in the top k_aux.
  SparseAutoencoder base(topk_, Clone(p));
  ForwardPass pass = base.Forward(x_, true);
  at::Tensor e = (pass.x - pass.x_hat).to(at::kDouble);
  at::Tensor dead = dead_.nonzero().squeeze(1);
  const int64_t k_aux = std::min<int64_t>(kDIn / 2, dead.numel());
  const double scale = std::min(static_cast<double>(dead.numel()) / (kDIn / 2), 1.0);
  at::Tensor chosen =
      dead.index_select(0,
                        std::get<1>(pass.hidden_pre.index_select(1, dead).topk(k_aux, 1)).flatten())
          .view({kBatch, k_aux});
  auto surrogate = [&](const SaeParameters& q) {
    at::Tensor h =
        at::matmul(x_.to(at::kDouble) - q.b_dec.to(at::kDouble), q.W_enc.to(at::kDouble)) +
        q.b_enc.to(at::kDouble);
    at::Tensor acts = at::zeros_like(h).scatter_(1, chosen, h.gather(1, chosen));
    at::Tensor recons = at::matmul(acts, q.W_dec.to(at::kDouble)) + q.b_dec.to(at::kDouble);
    return 0.5 * scale * (recons - e).pow(2).sum(1).mean().item<double>();
  };
  EXPECT_NEAR(surrogate(p), a.loss - b.loss, 1e-4 * (a.loss - b.loss));
  ExpectDirectionalDerivativesMatch(p, aux_grads, surrogate, "auxk");
}

}  // namespace
}  // namespace sae::sparse
