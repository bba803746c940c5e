#include "core/sae/sae_trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "core/sae/adam.h"
#include "core/sae/sparse_dictionary.h"
#include "support/temp_dir.h"

namespace sae::sparse {
namespace {

TrainerOptions RecoveryOptions(Architecture arch) {
  TrainerOptions o;
  o.sae.architecture = arch;
  o.sae.d_in = 64;
  o.sae.d_sae = 1024;
  o.sae.k = 4;
  o.seed = 7;
  o.b_dec_init = BDecInit::kGeometricMedian;
  o.lr = 2e-3;
  o.lr_schedule = LrSchedule::kConstantWithWarmup;
  o.lr_warm_up_steps = 50;
  o.total_steps = arch == Architecture::kStandard ? 2000 : 1200;
  o.l1_coefficient = 2e-3;
  o.use_ghost_grads = true;
  o.dead_feature_window = 200;
  o.feature_sampling_window = 500;
  o.train_batch_size = arch == Architecture::kStandard ? 1024 : 512;
  o.dead_tokens_threshold = 200 * 512;
  return o;
}

double TrainAndMeasureRecovery(Architecture arch, StepMetrics* last) {
  SparseDictionary dict(512, 64, 4, 99);
  TrainerOptions o = RecoveryOptions(arch);
  SaeTrainer trainer(o, nullptr);
  EXPECT_TRUE(trainer.InitializeDecoderBias(dict.Sample(4096)).ok());
  for (int64_t s = 0; s < o.total_steps; ++s) {
    auto m = trainer.Step(dict.Sample(o.train_batch_size));
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return 0;
    *last = *m;
  }
  return dict.Recovered(trainer.sae().params().W_dec, 0.9);
}

TEST(SaeTrainerTest, StandardSaeRecoversAKnownSparseDictionary) {
  StepMetrics last;
  double recovered = TrainAndMeasureRecovery(Architecture::kStandard, &last);
  RecordProperty("recovered", std::to_string(recovered));
  std::printf("standard: recovered %.3f, L0 %.2f, explained variance %.3f\n", recovered, last.l0,
              last.explained_variance);
  EXPECT_GE(recovered, 0.9);
  EXPECT_LT(last.l0, 64);  // sparse: a small fraction of the 1024 latents
}

TEST(SaeTrainerTest, TopKSaeRecoversAKnownSparseDictionary) {
  StepMetrics last;
  double recovered = TrainAndMeasureRecovery(Architecture::kTopK, &last);
  std::printf("topk: recovered %.3f, L0 %.2f, explained variance %.3f\n", recovered, last.l0,
              last.explained_variance);
  EXPECT_GE(recovered, 0.9);
  EXPECT_LE(last.l0, 4.0);
}

class SaeTrainerStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    o_.sae.d_in = 16;
    o_.sae.d_sae = 64;
    o_.lr = 1e-3;
    o_.lr_schedule = LrSchedule::kCosineAnnealingWarmup;
    o_.lr_warm_up_steps = 3;
    o_.total_steps = 24;
    o_.l1_warm_up_steps = 5;
    o_.use_ghost_grads = true;
    o_.dead_feature_window = 2;
    o_.feature_sampling_window = 5;
    o_.resample_dead_features = true;
    o_.resample_batches = 2;
    o_.train_batch_size = 32;
  }

  // Batch number i of a fixed stream (the same data however the run is split).
  static at::Tensor Batch(int64_t i) {
    at::Generator g = at::detail::createCPUGenerator(1000 + i);
    at::Tensor x = at::randn({32, 16}, g);
    x.narrow(1, 0, 4).mul_(3);
    return x;
  }

  TrainerOptions o_;
  const support::TempDir temp_{"sae_trainer_test"};
  const std::string dir_ = temp_.File("state");  // made by SaveState
};

TEST_F(SaeTrainerStateTest, ResumingFromACheckpointEqualsTrainingStraightThrough) {
  int64_t cursor = 0;  // the stream's position, saved as a data cursor would be
  auto source = [&]() -> absl::StatusOr<at::Tensor> { return Batch(cursor++); };

  // Ten latents start unable to fire, so the first window ends with features to resample.
  SaeParameters init = SparseAutoencoder(o_.sae, o_.seed).params();
  init.b_enc.narrow(0, 0, 10).fill_(-50);
  auto copy = [](const SaeParameters& p) {
    return SaeParameters{p.W_enc.clone(), p.b_enc.clone(), p.W_dec.clone(), p.b_dec.clone()};
  };
  SaeTrainer straight(o_, copy(init), nullptr);
  ASSERT_TRUE(straight.InitializeDecoderBias(Batch(-1)).ok());
  int64_t resampled = 0;
  for (int s = 0; s < 24; ++s) {
    auto m = straight.Step(*source(), source);
    ASSERT_TRUE(m.ok()) << m.status();
    if (m->sparsity) resampled += m->sparsity->resampled;
  }
  EXPECT_GT(resampled, 0) << "the run should exercise resampling";

  cursor = 0;
  SaeTrainer first(o_, copy(init), nullptr);
  ASSERT_TRUE(first.InitializeDecoderBias(Batch(-1)).ok());
  for (int s = 0; s < 12; ++s) ASSERT_TRUE(first.Step(*source(), source).ok());
  ASSERT_TRUE(first.SaveState(dir_, {{"cursor", std::to_string(cursor)}}).ok());

  SaeTrainer second(o_, nullptr);
  auto extra = second.LoadState(dir_);
  ASSERT_TRUE(extra.ok()) << extra.status();
  cursor = std::stoll(extra->at("cursor"));
  EXPECT_EQ(second.step(), 12);
  for (int s = 12; s < 24; ++s) ASSERT_TRUE(second.Step(*source(), source).ok());

  auto a = straight.sae().params().List();
  auto b = second.sae().params().List();
  for (int i = 0; i < 4; ++i) {
    EXPECT_LE((a[i] - b[i]).abs().max().item<double>(), 1e-6) << "parameter " << i;
  }
  EXPECT_TRUE(at::equal(straight.passes_since_fired(), second.passes_since_fired()));
  EXPECT_EQ(straight.tokens_seen(), second.tokens_seen());
}

TEST_F(SaeTrainerStateTest, ACheckpointOfAnotherShapeIsRefused) {
  SaeTrainer trainer(o_, nullptr);
  ASSERT_TRUE(trainer.SaveState(dir_).ok());
  TrainerOptions other = o_;
  other.sae.d_sae = 128;
  SaeTrainer wrong(other, nullptr);
  auto status = wrong.LoadState(dir_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("d_sae 64"));
}

TEST_F(SaeTrainerStateTest, MetricsFollowTheSeedsDefinitions) {
  SaeTrainer trainer(o_, nullptr);
  at::Tensor x = Batch(0);
  // L0 and explained variance of the step's forward, from the parameters before the step
  // (SAELens: (feature_acts > 0).sum(-1).mean(); 1 - ||x - x_hat||^2 / ||x - mean(x)||^2 per
  // token, averaged).
  const SaeParameters& p = trainer.sae().params();
  const at::Tensor acts = at::relu(at::matmul(x - p.b_dec, p.W_enc) + p.b_enc);  // [32, 64]
  const at::Tensor x_hat = at::matmul(acts, p.W_dec) + p.b_dec;                  // [32, 16]
  const double l0 = (acts > 0).sum(1).to(at::kDouble).mean().item<double>();
  const double explained_variance =
      (1 - (x - x_hat).pow(2).sum(1) / (x - x.mean(0)).pow(2).sum(1)).mean().item<double>();
  auto m = trainer.Step(x);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->step, 1);
  EXPECT_EQ(m->tokens, 32);
  EXPECT_DOUBLE_EQ(m->l1_coefficient, 0.0);  // l1 warm-up starts at 0
  EXPECT_NEAR(m->overall_loss, m->mse_loss + m->ghost_grad_loss, 1e-6);
  EXPECT_DOUBLE_EQ(m->l0, l0);
  EXPECT_NEAR(m->explained_variance, explained_variance, 1e-5);
  // Four more steps end the first window of 5: frequency metrics are logged.
  std::optional<SparsityMetrics> window;
  for (int i = 1; i < 5; ++i) {
    auto next = trainer.Step(Batch(i), [] { return absl::StatusOr<at::Tensor>(Batch(99)); });
    ASSERT_TRUE(next.ok());
    if (next->sparsity) window = next->sparsity;
  }
  ASSERT_TRUE(window.has_value());
  EXPECT_LE(window->mean_log10_feature_sparsity, 0);
  // The density histogram: every feature once; those that never fired (the window's 160
  // tokens make any other density >= 1/160) in the first bin; its bin centres average to the
  // mean log10 density within half a bin.
  const std::vector<int64_t>& bins = window->log10_density_histogram;
  ASSERT_EQ(bins.size(), static_cast<size_t>(SparsityMetrics::kDensityBins));
  int64_t features = 0;
  double centre_sum = 0;
  for (size_t i = 0; i < bins.size(); ++i) {
    features += bins[i];
    centre_sum += static_cast<double>(bins[i]) * (-10.0 + 0.5 * static_cast<double>(i) + 0.25);
  }
  EXPECT_EQ(features, 64);
  const at::Tensor density = trainer.FeatureSparsity();
  EXPECT_EQ(bins[0], (density == 0).sum().item<int64_t>());
  EXPECT_EQ(bins[0] + bins[1], (density < 1e-9).sum().item<int64_t>());
  EXPECT_NEAR(centre_sum / 64.0, window->mean_log10_feature_sparsity, 0.25 + 1e-6);
}

TEST_F(SaeTrainerStateTest, ResamplingTakesEveryFeatureBelowTheDeadFeatureThreshold) {
  for (double threshold : {0.5, 1e-8}) {
    o_.dead_feature_threshold = threshold;
    SaeTrainer trainer(o_, nullptr);
    ASSERT_TRUE(trainer.InitializeDecoderBias(Batch(-1)).ok());
    auto source = [] { return absl::StatusOr<at::Tensor>(Batch(99)); };
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(trainer.Step(Batch(i), source).ok());
    // The window's frequencies, as the fifth step (which ends the window of 5) reads them.
    const at::Tensor frequency = trainer.FeatureSparsity();
    const int64_t below = (frequency < threshold).sum().item<int64_t>();
    const int64_t never_fired = (frequency == 0).sum().item<int64_t>();
    if (threshold == 0.5) ASSERT_GT(below, never_fired) << "the threshold must matter here";
    auto m = trainer.Step(Batch(4), source);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(m->sparsity.has_value());
    EXPECT_EQ(m->sparsity->resampled, below) << "dead_feature_threshold " << threshold;
    EXPECT_EQ(m->sparsity->dead_by_threshold, below);
  }
}

// torch.optim.Adam's update written out in double precision, with the given betas.
TEST(AdamTest, FollowsTorchsAlgorithmWithTheGivenBetas) {
  const double beta1 = 0.5, beta2 = 0.9, eps = 1e-8, lr = 0.1;
  at::Tensor param = at::tensor({1.0f, -2.0f, 0.5f});
  at::Tensor expected = param.to(at::kDouble);
  at::Tensor m = at::zeros_like(expected), v = at::zeros_like(expected);
  Adam adam({param}, beta1, beta2);
  for (int t = 1; t <= 3; ++t) {
    at::Tensor grad = at::tensor({0.3f * t, -1.0f, 2.0f / t});
    adam.Step({param}, {grad}, lr);
    const at::Tensor g = grad.to(at::kDouble);
    m = beta1 * m + (1 - beta1) * g;
    v = beta2 * v + (1 - beta2) * g * g;
    const at::Tensor m_hat = m / (1 - std::pow(beta1, t));
    const at::Tensor denom = (v / (1 - std::pow(beta2, t))).sqrt() + eps;
    expected = expected - lr * m_hat / denom;
  }
  EXPECT_LE((param.to(at::kDouble) - expected).abs().max().item<double>(), 1e-6);
  // With the default betas (0.9, 0.999) the same gradients land elsewhere.
  at::Tensor other = at::tensor({1.0f, -2.0f, 0.5f});
  Adam defaults({other});
  for (int t = 1; t <= 3; ++t) {
    defaults.Step({other}, {at::tensor({0.3f * t, -1.0f, 2.0f / t})}, lr);
  }
  EXPECT_GT((other.to(at::kDouble) - expected).abs().max().item<double>(), 1e-3);
}

TEST_F(SaeTrainerStateTest, ABatchOfTheWrongWidthIsRejected) {
  SaeTrainer trainer(o_, nullptr);
  EXPECT_EQ(trainer.Step(at::zeros({4, 8})).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sae::sparse
