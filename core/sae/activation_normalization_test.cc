// normalize_activations (SAELens 6): expected_average_only_in trains on activations times a
// factor estimated before training and folds it into the exported weights;
// constant_norm_rescale scales every activation to norm sqrt(d_in) and undoes it on the output.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "core/sae/sae_trainer.h"
#include "support/temp_dir.h"

namespace sae::sparse {
namespace {

using config::NormalizeActivations;

// Batch i of a fixed stream whose activations have norms far from sqrt(d_in).
at::Tensor Batch(int64_t i) {
  at::Generator g = at::detail::createCPUGenerator(500 + i);
  return at::randn({32, 16}, g) * 7.0 + 2.0;
}

TrainerOptions Options(NormalizeActivations normalize, Architecture architecture) {
  TrainerOptions o;
  o.sae.d_in = 16;
  o.sae.d_sae = 64;
  o.sae.k = 4;
  o.sae.architecture = architecture;
  o.sae.normalize_activations = normalize;
  o.lr = 1e-3;
  o.lr_schedule = LrSchedule::kConstant;
  o.total_steps = 10;
  o.train_batch_size = 32;
  o.feature_sampling_window = 4;
  return o;
}

BatchSource Stream(int64_t& cursor) {
  return [&cursor]() -> absl::StatusOr<at::Tensor> { return Batch(cursor++); };
}

TEST(ActivationNormalizationTest, TheFactorIsRootDInOverTheMeanNormOfTheEstimateBatches) {
  SaeTrainer trainer(Options(NormalizeActivations::kExpectedAverageOnlyIn, Architecture::kStandard),
                     nullptr);
  EXPECT_TRUE(trainer.NeedsActivationScale());
  EXPECT_EQ(trainer.Step(Batch(0)).status().code(), absl::StatusCode::kFailedPrecondition);
  int64_t cursor = 0;
  ASSERT_TRUE(trainer.EstimateActivationScale(Stream(cursor), 3).ok());
  EXPECT_EQ(cursor, 3);
  const at::Tensor all = at::cat({Batch(0), Batch(1), Batch(2)}).to(at::kDouble);
  const double expected = 4.0 / all.norm(2, {1}).mean().item<double>();
  EXPECT_NEAR(trainer.activation_scale(), expected, 1e-12 * expected);
  EXPECT_FALSE(trainer.NeedsActivationScale());
}

// Training with the factor s on x is training without normalisation on s x; the folded export
// then reconstructs x itself: x_hat(x) = x_hat_scaled(s x) / s.
TEST(ActivationNormalizationTest, ExpectedAverageTrainsOnScaledActivationsAndFoldsTheFactor) {
  for (Architecture architecture :
       {Architecture::kStandard, Architecture::kTopK, Architecture::kJumpReLU,
        Architecture::kGated, Architecture::kBatchTopK}) {
    SCOPED_TRACE(std::string(ArchitectureName(architecture)));
    TrainerOptions normalized = Options(NormalizeActivations::kExpectedAverageOnlyIn, architecture);
    SaeTrainer a(normalized, nullptr);
    int64_t cursor = 0;
    ASSERT_TRUE(a.EstimateActivationScale(Stream(cursor), 2).ok());
    const double s = a.activation_scale();
    SaeTrainer b(Options(NormalizeActivations::kNone, architecture), nullptr);
    ASSERT_TRUE(a.InitializeDecoderBias(Batch(-1)).ok());
    ASSERT_TRUE(b.InitializeDecoderBias(Batch(-1) * s).ok());
    for (int step = 0; step < 6; ++step) {
      auto ma = a.Step(Batch(step));
      auto mb = b.Step(Batch(step) * s);
      ASSERT_TRUE(ma.ok() && mb.ok());
      EXPECT_NEAR(ma->mse_loss, mb->mse_loss, 1e-5 * (1 + std::abs(mb->mse_loss)));
    }
    auto pa = a.sae().params().List();
    auto pb = b.sae().params().List();
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_TRUE(at::allclose(pa[i], pb[i], 1e-5, 1e-6)) << "parameter " << i;
    }
    EXPECT_EQ(a.InferenceOptions().normalize_activations, NormalizeActivations::kNone);
    SparseAutoencoder folded(a.InferenceOptions(), a.InferenceParameters());
    const at::Tensor x = Batch(40);
    EXPECT_TRUE(at::allclose(folded.Reconstruct(x), b.sae().Reconstruct(x * s) / s, 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(folded.Encode(x), b.sae().Encode(x * s), 1e-4, 1e-5));
    // The trainer's own parameters are untouched by the fold.
    EXPECT_TRUE(at::equal(a.sae().params().W_enc, pa[0]));
  }
}

TEST(ActivationNormalizationTest, TheFactorIsSavedWithTheTrainingState) {
  const TrainerOptions o = Options(NormalizeActivations::kExpectedAverageOnlyIn,
                                   Architecture::kStandard);
  SaeTrainer first(o, nullptr);
  int64_t cursor = 0;
  ASSERT_TRUE(first.EstimateActivationScale(Stream(cursor), 2).ok());
  ASSERT_TRUE(first.InitializeDecoderBias(Batch(-1)).ok());
  ASSERT_TRUE(first.Step(Batch(2)).ok());
  const support::TempDir temp("activation_normalization_test");
  ASSERT_TRUE(first.SaveState(temp.File("state")).ok());
  SaeTrainer second(o, nullptr);
  ASSERT_TRUE(second.LoadState(temp.File("state")).ok());
  EXPECT_FALSE(second.NeedsActivationScale());
  EXPECT_EQ(second.activation_scale(), first.activation_scale());
  auto a = first.Step(Batch(3));
  auto b = second.Step(Batch(3));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->mse_loss, b->mse_loss);
}

// SAELens 6's constant_norm_rescale: x' = x sqrt(d_in) / ||x||, features of x', and
// x_hat = (f W_dec + b_dec) ||x|| / sqrt(d_in).
TEST(ActivationNormalizationTest, ConstantNormRescaleScalesEachActivationAndUndoesItOnTheOutput) {
  const TrainerOptions o = Options(NormalizeActivations::kConstantNormRescale,
                                   Architecture::kStandard);
  SaeTrainer trainer(o, nullptr);
  ASSERT_TRUE(trainer.InitializeDecoderBias(Batch(-1)).ok());
  for (int step = 0; step < 3; ++step) ASSERT_TRUE(trainer.Step(Batch(step)).ok());
  const SparseAutoencoder& sae = trainer.sae();
  const SaeParameters& p = sae.params();
  const at::Tensor x = Batch(9);
  const at::Tensor norms = x.norm(2, {1}, true);
  const at::Tensor scaled = x * 4.0 / norms;
  const at::Tensor f = at::relu(at::addmm(p.b_enc, scaled - p.b_dec, p.W_enc));
  const at::Tensor x_hat = at::addmm(p.b_dec, f, p.W_dec) * norms / 4.0;
  EXPECT_TRUE(at::allclose(sae.Encode(x), f, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(sae.Reconstruct(x), x_hat, 1e-4, 1e-5));
  ForwardPass pass = sae.Infer(x);
  EXPECT_TRUE(at::equal(pass.x, x));
  EXPECT_TRUE(at::allclose(pass.x_hat, x_hat, 1e-4, 1e-5));
  // Training sees every activation at norm sqrt(d_in).
  EXPECT_TRUE(at::allclose(trainer.TrainingInput(x).norm(2, {1}), at::full({32}, 4.0), 1e-5, 1e-5));
  EXPECT_EQ(trainer.InferenceOptions().normalize_activations,
            NormalizeActivations::kConstantNormRescale);
}

}  // namespace
}  // namespace sae::sparse
