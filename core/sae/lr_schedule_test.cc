#include "core/sae/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace sae::sparse {
namespace {

TrainerOptions Options(LrSchedule s) {
  TrainerOptions o;
  o.lr = 1.0;
  o.lr_end = 0.1;
  o.lr_schedule = s;
  o.lr_warm_up_steps = 4;
  o.total_steps = 20;
  return o;
}

constexpr double kPi = 3.14159265358979323846;

TEST(LrScheduleTest, ConstantNeverChanges) {
  for (int s : {0, 5, 19, 40})
    EXPECT_DOUBLE_EQ(LearningRateAt(Options(LrSchedule::kConstant), s), 1.0);
}

TEST(LrScheduleTest, ConstantWithWarmupUsesTheValueAfterTheFirstSchedulerStep) {
  TrainerOptions o = Options(LrSchedule::kConstantWithWarmup);
  // The seed steps the scheduler before the optimiser: step 0 uses lambda(1) = 2/4.
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 1), 0.75);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 2), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 10), 1.0);
  o.lr_warm_up_steps = 0;
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 1.0);
}

TEST(LrScheduleTest, LinearWarmupDecayRisesThenFallsToZeroAtTheEnd) {
  TrainerOptions o = Options(LrSchedule::kLinearWarmupDecay);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 3), (20.0 - 4) / 16);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 9), (20.0 - 10) / 16);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 19), 0.0);
}

TEST(LrScheduleTest, CosineAnnealingGoesFromLrToLrEnd) {
  TrainerOptions o = Options(LrSchedule::kCosineAnnealing);
  EXPECT_NEAR(LearningRateAt(o, 0), 0.1 + 0.9 * (1 + std::cos(kPi / 20)) / 2, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 9), 0.55, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 19), 0.1, 1e-12);
}

TEST(LrScheduleTest, CosineAnnealingWarmupUsesLrEndAsAFractionLikeTheSeed) {
  TrainerOptions o = Options(LrSchedule::kCosineAnnealingWarmup);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 0), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(o, 3), 1.0);  // t = 4: progress 0
  EXPECT_NEAR(LearningRateAt(o, 11), 0.1 + 0.45 * (1 + std::cos(kPi * 8 / 16)), 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 19), 0.1, 1e-12);
}

TEST(LrScheduleTest, WarmRestartsStartAgainAfterAPeriod) {
  TrainerOptions o = Options(LrSchedule::kCosineAnnealingWarmRestarts);
  EXPECT_NEAR(LearningRateAt(o, 19), 1.0, 1e-12);  // t = 20 = T: a restart
  EXPECT_NEAR(LearningRateAt(o, 9), 0.55, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 29), 0.55, 1e-12);
}

TEST(LrScheduleTest, RestartCyclesDivideThePeriod) {
  TrainerOptions o = Options(LrSchedule::kCosineAnnealingWarmRestarts);
  o.n_restart_cycles = 4;  // period 20 / 4 = 5
  EXPECT_NEAR(LearningRateAt(o, 4), 1.0, 1e-12);  // t = 5: the first restart
  EXPECT_NEAR(LearningRateAt(o, 9), 1.0, 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 1), 0.1 + 0.45 * (1 + std::cos(kPi * 2 / 5)), 1e-12);
  EXPECT_NEAR(LearningRateAt(o, 6), LearningRateAt(o, 1), 1e-12);
}

// SAELens 6's final LinearLR(start_factor = end value / lr, end_factor = 0, total_iters = d),
// entered at step T - d: its first step uses the end value, its last end value / d.
TEST(LrScheduleTest, DecayStepsEndTheScheduleWithALinearFallFromItsEndValue) {
  TrainerOptions constant = Options(LrSchedule::kConstant);
  constant.total_steps = 10;
  constant.lr_decay_steps = 4;
  const double expected[] = {1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25};
  for (int s = 0; s < 10; ++s) EXPECT_DOUBLE_EQ(LearningRateAt(constant, s), expected[s]) << s;

  TrainerOptions cosine = Options(LrSchedule::kCosineAnnealing);
  cosine.lr_decay_steps = 4;  // the cosine runs over 16 steps, then 0.1 falls to 0
  EXPECT_NEAR(LearningRateAt(cosine, 7), 0.1 + 0.45 * (1 + std::cos(kPi * 8 / 16)), 1e-12);
  EXPECT_NEAR(LearningRateAt(cosine, 15), 0.1, 1e-12);
  EXPECT_NEAR(LearningRateAt(cosine, 16), 0.1, 1e-12);
  EXPECT_NEAR(LearningRateAt(cosine, 18), 0.05, 1e-12);
  EXPECT_NEAR(LearningRateAt(cosine, 19), 0.025, 1e-12);

  TrainerOptions warmup = Options(LrSchedule::kCosineAnnealingWarmup);
  warmup.lr_decay_steps = 5;  // lr_end is a fraction of lr here: the fall starts at 0.1
  EXPECT_NEAR(LearningRateAt(warmup, 15), 0.1, 1e-12);
  EXPECT_NEAR(LearningRateAt(warmup, 19), 0.02, 1e-12);
}

TEST(LrScheduleTest, L1WarmUpRisesLinearlyFromZero) {
  TrainerOptions o;
  o.l1_coefficient = 2.0;
  o.l1_warm_up_steps = 4;
  EXPECT_DOUBLE_EQ(L1CoefficientAt(o, 0), 0.0);
  EXPECT_DOUBLE_EQ(L1CoefficientAt(o, 1), 0.5);
  EXPECT_DOUBLE_EQ(L1CoefficientAt(o, 4), 2.0);
  EXPECT_DOUBLE_EQ(L1CoefficientAt(o, 100), 2.0);
  o.l1_warm_up_steps = 0;
  EXPECT_DOUBLE_EQ(L1CoefficientAt(o, 0), 2.0);
}

TEST(LrScheduleTest, NamesParseCaseInsensitively) {
  EXPECT_EQ(*ParseLrSchedule("ConstantWithWarmup"), LrSchedule::kConstantWithWarmup);
  EXPECT_FALSE(ParseLrSchedule("linear").ok());
}

}  // namespace
}  // namespace sae::sparse
