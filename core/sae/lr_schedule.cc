#include "core/sae/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace sae::sparse {
namespace {

constexpr double kPi = 3.14159265358979323846;

double Warmup(int64_t t, int64_t warmup) {
  return static_cast<double>(t + 1) / static_cast<double>(warmup);
}

// LambdaLR's multiplier after `t` scheduler steps.
double Lambda(const TrainerOptions& o, int64_t t) {
  const int64_t T = std::max<int64_t>(o.total_steps, 1);
  const int64_t w = o.lr_warm_up_steps;
  switch (o.lr_schedule) {
    case LrSchedule::kConstant:
      return 1.0;
    case LrSchedule::kConstantWithWarmup:
      return w > 0 ? std::min(1.0, Warmup(t, w)) : 1.0;
    case LrSchedule::kLinearWarmupDecay:
      if (t < w) return Warmup(t, w);
      return T > w ? static_cast<double>(T - t) / static_cast<double>(T - w) : 1.0;
    case LrSchedule::kCosineAnnealingWarmup: {
      if (t < w) return Warmup(t, w);
      double progress = T > w ? static_cast<double>(t - w) / static_cast<double>(T - w) : 0.0;
      double end = o.lr_end;  // the seed passes lr / 10 here and uses it as a fraction
      return end + 0.5 * (1 - end) * (1 + std::cos(kPi * progress));
    }
    default:
      return 1.0;
  }
}

// The schedule over `total` steps (T), without the final decay.
double MainSchedule(const TrainerOptions& o, int64_t step, int64_t total) {
  const int64_t t = step + 1;  // scheduler.step() runs before optimizer.step()
  const int64_t T = std::max<int64_t>(total, 1);
  switch (o.lr_schedule) {
    case LrSchedule::kCosineAnnealing:
      return o.lr_end + (o.lr - o.lr_end) * (1 + std::cos(kPi * static_cast<double>(t) / T)) / 2;
    case LrSchedule::kCosineAnnealingWarmRestarts: {
      const int64_t period = std::max<int64_t>(T / std::max<int64_t>(o.n_restart_cycles, 1), 1);
      const int64_t t_cur = t % period;
      return o.lr_end +
             (o.lr - o.lr_end) * (1 + std::cos(kPi * static_cast<double>(t_cur) / period)) / 2;
    }
    default: {
      TrainerOptions shortened = o;
      shortened.total_steps = T;
      return o.lr * Lambda(shortened, t);
    }
  }
}

// Where the schedule ends, the start of lr_decay_steps' linear decay.
double EndValue(const TrainerOptions& o) {
  switch (o.lr_schedule) {
    case LrSchedule::kCosineAnnealing:
    case LrSchedule::kCosineAnnealingWarmRestarts:
      return o.lr_end;
    case LrSchedule::kCosineAnnealingWarmup:
      return o.lr * o.lr_end;
    case LrSchedule::kLinearWarmupDecay:
      return 0.0;
    default:
      return o.lr;
  }
}

}  // namespace

double LearningRateAt(const TrainerOptions& o, int64_t step) {
  const int64_t T = std::max<int64_t>(o.total_steps, 1);
  const int64_t d = std::min<int64_t>(std::max<int64_t>(o.lr_decay_steps, 0), T);
  if (d == 0) return MainSchedule(o, step, T);
  const int64_t main_steps = T - d;
  if (step < main_steps) return MainSchedule(o, step, main_steps);
  const double done = static_cast<double>(step - main_steps) / static_cast<double>(d);
  return EndValue(o) * std::max(0.0, 1.0 - done);
}

double L1CoefficientAt(const TrainerOptions& o, int64_t step) {
  if (o.l1_warm_up_steps <= 0) return o.l1_coefficient;
  return o.l1_coefficient *
         std::min(1.0, static_cast<double>(step) / static_cast<double>(o.l1_warm_up_steps));
}

double L0CoefficientAt(const TrainerOptions& o, int64_t step) {
  if (o.l0_warm_up_steps <= 0) return o.l0_coefficient;
  return o.l0_coefficient *
         std::min(1.0, static_cast<double>(step) / static_cast<double>(o.l0_warm_up_steps));
}

}  // namespace sae::sparse
