// The sparse step of the ReLU-family SAEs (standard, jumprelu, gated) and of the batchtopk family
// (batchtopk, matryoshka_batchtopk) against their dense step:
// the same forward, losses, statistics and gradients within 1e-5 (relative to each tensor's
// largest entry, float32) on random data at several densities, right at the switch point, with
// dead latents (ghost gradients, the pre-activation loss), and the same parameters after
// training steps.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/sae/sae_trainer.h"
#include "core/sae/sparse_autoencoder.h"
#include "core/sae/sparse_kernels.h"

namespace sae::sparse {
namespace {

constexpr int64_t kDIn = 48, kDSae = 384, kBatch = 96;
constexpr double kTolerance = 1e-5;

// max |a - b| <= 1e-5 max |b|.
void ExpectClose(const at::Tensor& a, const at::Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  const double scale = b.abs().max().item<double>();
  const double error = (a - b).abs().max().item<double>();
  EXPECT_LE(error, kTolerance * scale) << what << ": error " << error << ", scale " << scale;
}

void ExpectScalarClose(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), kTolerance * std::max(std::abs(b), 1e-12))
      << what << ": " << a << " vs " << b;
}

SaeOptions Options(Architecture architecture) {
  SaeOptions o;
  o.architecture = architecture;
  o.d_in = kDIn;
  o.d_sae = kDSae;
  o.k = 8;  // batchtopk family: 8 of 384 latents per token on average
  if (architecture == Architecture::kMatryoshkaBatchTopK) o.matryoshka_widths = {40, 160, kDSae};
  return o;
}

// The bias that makes a fraction `density` of this batch's encoder pre-activations positive:
// minus each latent's (1 - density) quantile of x W_enc over the batch.
at::Tensor BiasForDensity(const at::Tensor& pre, double density) {
  return -at::quantile(pre, 1.0 - density, /*dim=*/0);
}

// A random SAE of the architecture whose batch x has about `density` of its entries active.
SparseAutoencoder MakeSae(Architecture architecture, const at::Tensor& x, double density,
                          uint64_t seed) {
  SparseAutoencoder sae(Options(architecture), seed);
  SaeParameters& p = sae.params();
  at::manual_seed(seed);
  p.b_dec.normal_(0, 0.1);
  at::Tensor pre = at::mm(x - p.b_dec, p.W_enc);
  if (architecture == Architecture::kGated) {
    p.b_gate.copy_(BiasForDensity(pre, density));
    p.r_mag.normal_(0, 0.3);
    p.b_mag.normal_(0, 0.2);
  } else if (architecture == Architecture::kJumpReLU) {
    // threshold in [0.05, 0.3]; b_enc puts the fraction `density` above it.
    p.threshold.uniform_(0.05, 0.3);
    p.b_enc.copy_(BiasForDensity(pre, density) + p.threshold);
  } else {
    p.b_enc.copy_(BiasForDensity(pre, density));
  }
  return sae;
}

struct Step {
  ForwardPass pass;
  StepBuffer buffer;
};

Step RunStep(const SparseAutoencoder& sae, const at::Tensor& x, const LossOptions& loss,
             bool keep_hidden_pre) {
  ForwardPass pass = sae.Forward(x, keep_hidden_pre);
  at::Tensor sums = SparseAutoencoder::MomentSums(pass) / static_cast<double>(x.size(0));
  StepBuffer buffer(sae.params());
  sae.Backward(pass, {sums[0], sums[1]}, loss, buffer);
  return {std::move(pass), std::move(buffer)};
}

// Runs the step dense (max density -1) and sparse (1) on the same SAE and batch and compares.
void ExpectSparseMatchesDense(SparseAutoencoder& sae, const at::Tensor& x, const LossOptions& loss,
                              const std::string& label, bool keep_hidden_pre = true) {
  sae.set_sparse_step_max_density(-1);
  Step dense = RunStep(sae, x, loss, keep_hidden_pre);
  sae.set_sparse_step_max_density(1);
  Step sparse = RunStep(sae, x, loss, keep_hidden_pre);
  ASSERT_FALSE(dense.pass.entries) << label;
  ASSERT_TRUE(sparse.pass.entries) << label;
  EXPECT_FALSE(sparse.pass.feature_acts.defined()) << label;
  ExpectClose(sparse.pass.x_hat, dense.pass.x_hat, label + " x_hat");
  const auto named = sae.params().Named();
  const auto dense_grads = dense.buffer.gradients(), sparse_grads = sparse.buffer.gradients();
  ASSERT_EQ(dense_grads.size(), named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    ExpectClose(sparse_grads[i], dense_grads[i], label + " grad " + named[i].first);
    // A test that can fail: the gradient is not all zero.
    EXPECT_GT(dense_grads[i].abs().max().item<double>(), 0) << label << " " << named[i].first;
  }
  EXPECT_TRUE(at::equal(sparse.buffer.fired, dense.buffer.fired)) << label << " fired";
  for (auto [s, name] : {std::pair{StepBuffer::kLossSum, "loss"},
                         std::pair{StepBuffer::kMseSum, "mse"}, std::pair{StepBuffer::kL1Sum, "l1"},
                         std::pair{StepBuffer::kGhostSum, "ghost"},
                         std::pair{StepBuffer::kAuxSum, "aux"},
                         std::pair{StepBuffer::kL0TokenSum, "l0"},
                         std::pair{StepBuffer::kL0LossSum, "l0_loss"},
                         std::pair{StepBuffer::kPreActSum, "pre_act"},
                         std::pair{StepBuffer::kEvTokenSum, "explained variance"}}) {
    ExpectScalarClose(sparse.buffer.scalar(s), dense.buffer.scalar(s), label + " " + name);
  }
}

at::Tensor Batch(uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({kBatch, kDIn});
}

TEST(SparseStepTest, StandardMatchesDenseAtSeveralDensities) {
  const at::Tensor x = Batch(1);
  for (double density : {0.005, 0.02, 0.05, 0.2, 0.6}) {
    SparseAutoencoder sae = MakeSae(Architecture::kStandard, x, density, 11);
    LossOptions loss;
    loss.l1_coefficient = 0.3;
    ExpectSparseMatchesDense(sae, x, loss, "standard density " + std::to_string(density));
    ExpectSparseMatchesDense(sae, x, loss, "standard (no hidden_pre) " + std::to_string(density),
                             /*keep_hidden_pre=*/false);
  }
}

TEST(SparseStepTest, StandardWithoutDecoderBiasInInput) {
  const at::Tensor x = Batch(2);
  SaeOptions o = Options(Architecture::kStandard);
  o.apply_b_dec_to_input = false;
  SparseAutoencoder base = MakeSae(Architecture::kStandard, x, 0.03, 12);
  SparseAutoencoder sae(o, base.params().Clone());
  ExpectSparseMatchesDense(sae, x, LossOptions(), "standard, b_dec not in the input");
}

TEST(SparseStepTest, StandardGhostGradientsStayExact) {
  const at::Tensor x = Batch(3);
  SparseAutoencoder sae = MakeSae(Architecture::kStandard, x, 0.03, 13);
  for (int64_t n_dead : {int64_t{1}, int64_t{40}, kDSae}) {
    LossOptions loss;
    loss.use_ghost_grads = true;
    loss.dead_mask = at::zeros({kDSae}, at::kBool);
    // Every 7th latent first: some dead latents fire in this batch, some do not.
    loss.dead_mask.index_fill_(0, (at::arange(n_dead, at::kLong) * 7) % kDSae, true);
    ExpectSparseMatchesDense(sae, x, loss, "ghost grads, dead " + std::to_string(n_dead));
    Step s = RunStep(sae, x, loss, true);
    EXPECT_GT(s.buffer.scalar(StepBuffer::kGhostSum), 0) << n_dead;
  }
}

// Right at the switch point: a batch whose density equals the maximum takes the sparse step, one
// entry fewer allowed takes the dense step, and both agree.
TEST(SparseStepTest, SwitchPointChoosesAndAgrees) {
  const at::Tensor x = Batch(4);
  for (Architecture a : {Architecture::kStandard, Architecture::kJumpReLU, Architecture::kGated}) {
    SparseAutoencoder sae = MakeSae(a, x, kSparseStepMaxDensity, 14);
    sae.set_sparse_step_max_density(1);
    const ForwardPass probe = sae.Forward(x, true);
    ASSERT_TRUE(probe.entries);
    const double total = static_cast<double>(kBatch * kDSae);
    const int64_t nnz = probe.entries->nnz();
    EXPECT_NEAR(probe.entries->density(), kSparseStepMaxDensity, 0.01) << ArchitectureName(a);
    // Exactly at the point (the cap is floor(max_density * B * S) entries).
    sae.set_sparse_step_max_density((static_cast<double>(nnz) + 0.5) / total);
    Step at_point = RunStep(sae, x, LossOptions(), true);
    EXPECT_TRUE(at_point.pass.entries) << ArchitectureName(a);
    sae.set_sparse_step_max_density((static_cast<double>(nnz) - 0.5) / total);
    Step over_point = RunStep(sae, x, LossOptions(), true);
    EXPECT_FALSE(over_point.pass.entries) << ArchitectureName(a);
    ExpectClose(at_point.pass.x_hat, over_point.pass.x_hat, "switch point x_hat");
    const auto g_sparse = at_point.buffer.gradients(), g_dense = over_point.buffer.gradients();
    for (size_t i = 0; i < g_dense.size(); ++i) {
      ExpectClose(g_sparse[i], g_dense[i], std::string("switch point grad of ") +
                                               std::string(ArchitectureName(a)) + " #" +
                                               std::to_string(i));
    }
    // And the default constant: this batch is at it, so the default takes the sparse step.
    sae.set_sparse_step_max_density(kSparseStepMaxDensity);
    EXPECT_EQ(static_cast<bool>(sae.Forward(x, true).entries),
              nnz <= static_cast<int64_t>(kSparseStepMaxDensity * total))
        << ArchitectureName(a);
  }
}

TEST(SparseStepTest, JumpReLUMatchesDenseForEverySparsityLoss) {
  const at::Tensor x = Batch(5);
  for (double density : {0.01, 0.05, 0.3}) {
    SparseAutoencoder sae = MakeSae(Architecture::kJumpReLU, x, density, 15);
    for (auto sparsity : {config::JumpReLUSparsityLoss::kStep, config::JumpReLUSparsityLoss::kTanh,
                          config::JumpReLUSparsityLoss::kQuadratic}) {
      for (bool ste : {false, true}) {
        LossOptions loss;
        loss.l0_coefficient = 0.5;
        // A wide window so that many inactive entries carry the threshold's gradient.
        loss.jumprelu_bandwidth = 0.2;
        loss.jumprelu_sparsity_loss = sparsity;
        loss.target_l0 = 3;
        loss.jumprelu_tanh_scale = 4;
        loss.jumprelu_ste_to_input = ste;
        loss.pre_act_loss_coefficient = 0.7;
        loss.dead_mask = at::arange(kDSae) % 5 == 0;
        ExpectSparseMatchesDense(sae, x,
                                 loss, "jumprelu density " + std::to_string(density) + " loss " +
                                           std::to_string(static_cast<int>(sparsity)) +
                                           (ste ? " ste" : ""));
      }
    }
  }
}

TEST(SparseStepTest, GatedMatchesDenseAtSeveralDensities) {
  const at::Tensor x = Batch(6);
  for (double density : {0.01, 0.05, 0.3}) {
    SparseAutoencoder sae = MakeSae(Architecture::kGated, x, density, 16);
    LossOptions loss;
    loss.l1_coefficient = 0.4;
    ExpectSparseMatchesDense(sae, x, loss, "gated density " + std::to_string(density));
  }
}

// The batchtopk family keeps k * B entries of the batch: its sparse step has no density to choose,
// so the SAE's bias is left alone; AuxK with dead latents, the matryoshka prefixes, and b_dec off
// the input are covered.
TEST(SparseStepTest, BatchTopKFamilyMatchesDense) {
  const at::Tensor x = Batch(8);
  for (Architecture a : {Architecture::kBatchTopK, Architecture::kMatryoshkaBatchTopK}) {
    for (bool b_dec_in_input : {true, false}) {
      SaeOptions o = Options(a);
      o.apply_b_dec_to_input = b_dec_in_input;
      SparseAutoencoder sae(o, 17);
      sae.params().b_dec.normal_(0, 0.1);
      sae.params().b_enc.normal_(0, 0.1);
      const std::string label = std::string(ArchitectureName(a)) +
                                (b_dec_in_input ? "" : " (b_dec not in the input)");
      ExpectSparseMatchesDense(sae, x, LossOptions(), label);
      LossOptions aux;
      aux.aux_k_coefficient = 0.5;
      aux.dead_mask = at::arange(kDSae) % 3 == 0;
      ExpectSparseMatchesDense(sae, x, aux, label + " with AuxK");
      Step s = RunStep(sae, x, aux, true);
      EXPECT_GT(s.buffer.scalar(StepBuffer::kAuxSum), 0) << label;
      // k per token on average: the batch keeps k * B entries.
      EXPECT_EQ(s.pass.entries->nnz(), o.k * kBatch) << label;
      if (a == Architecture::kMatryoshkaBatchTopK) {
        EXPECT_GT(s.buffer.scalar(StepBuffer::kInnerMseSum), 0) << label;
      }
    }
  }
}

// Whole training steps (Adam, the decoder's parallel-gradient removal, dead-latent counters):
// a trainer forced dense and one forced sparse keep the same parameters.
TEST(SparseStepTest, TrainingStepsKeepTheSameParameters) {
  for (Architecture a : {Architecture::kStandard, Architecture::kJumpReLU, Architecture::kGated,
                         Architecture::kBatchTopK, Architecture::kMatryoshkaBatchTopK}) {
    TrainerOptions o;
    o.sae = Options(a);
    o.seed = 21;
    o.lr = 1e-3;
    o.lr_schedule = LrSchedule::kConstant;
    o.total_steps = 100;
    o.train_batch_size = kBatch;
    o.l1_coefficient = 0.2;
    o.l1_warm_up_steps = 0;
    o.use_ghost_grads = true;
    o.dead_feature_window = 2;
    o.jumprelu_bandwidth = 0.1;
    SaeTrainer dense(o, nullptr), sparse(o, nullptr);
    const at::Tensor x0 = Batch(7);
    const SparseAutoencoder probe = MakeSae(a, x0, 0.03, 22);
    for (SaeTrainer* t : {&dense, &sparse}) {
      const auto from = probe.params().List(), to = t->sae().params().List();
      for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
    }
    dense.sae().set_sparse_step_max_density(-1);
    sparse.sae().set_sparse_step_max_density(1);
    for (int step = 0; step < 5; ++step) {
      const at::Tensor x = Batch(100 + step);
      auto md = dense.Step(x);
      auto ms = sparse.Step(x);
      ASSERT_TRUE(md.ok() && ms.ok()) << md.status() << ms.status();
      ExpectScalarClose(ms->overall_loss, md->overall_loss, "loss");
      EXPECT_EQ(ms->dead_features, md->dead_features);
    }
    // Adam's update g / (sqrt(g^2) + 1e-8) on the first step is about lr * sign(g): a gradient
    // entry that cancels to within float rounding of zero (|g| ~ 1e-9) may move by up to lr in
    // one path and not the other. So every parameter agrees within 1e-5 of its scale except at
    // most one entry in 1,000 (and what those move), within the 5 steps' 5 lr.
    const auto pd = dense.sae().params().Named(), ps = sparse.sae().params().Named();
    for (size_t i = 0; i < pd.size(); ++i) {
      const std::string what = std::string(ArchitectureName(a)) + " parameter " + pd[i].first;
      const at::Tensor error = (ps[i].second - pd[i].second).abs();
      const double scale = pd[i].second.abs().max().item<double>();
      const int64_t off = (error > kTolerance * scale).sum().item<int64_t>();
      EXPECT_LE(off, std::max<int64_t>(1, pd[i].second.numel() / 1000)) << what;
      EXPECT_LE(error.max().item<double>(), 5 * o.lr) << what;
    }
  }
}

TEST(SparseStepTest, CollectStopsPastTheCap) {
  at::Tensor h = at::zeros({8, 10});
  h.index_put_({at::indexing::Slice(), 3}, 1.0);  // 8 active entries in latent 3
  h[5][7] = 2.0;
  LatentEntries entries;
  auto positive = [](float v, int64_t) { return v > 0.0f; };
  EXPECT_FALSE(CollectLatentEntries(h, 8, nullptr, positive, entries));
  ASSERT_TRUE(CollectLatentEntries(h, 9, nullptr, positive, entries));
  EXPECT_EQ(entries.nnz(), 9);
  EXPECT_EQ(entries.start[3], 0);
  EXPECT_EQ(entries.start[4], 8);
  EXPECT_EQ(entries.start[7], 8);
  EXPECT_EQ(entries.token[8], 5);
  EXPECT_EQ(entries.value[8], 2.0f);
  for (int b = 0; b < 8; ++b) EXPECT_EQ(entries.token[b], b);
  EXPECT_DOUBLE_EQ(entries.density(), 9.0 / 80.0);
}

}  // namespace
}  // namespace sae::sparse
