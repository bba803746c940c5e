// The seed's learning-rate schedules and SAELens's L1 warm-up, in closed form.
#ifndef SAE_CORE_SAE_LR_SCHEDULE_H_
#define SAE_CORE_SAE_LR_SCHEDULE_H_

#include <cstdint>

#include "core/sae/sae_options.h"

namespace sae::sparse {

// The learning rate Adam uses at training step `step` (0-based). The seed calls
// scheduler.step() before optimizer.step(), so step s uses LambdaLR's value after s + 1 calls:
//   constant                     lr
//   constantwithwarmup           lr * min(1, (s+1+1)/warmup)  -- i.e. lambda(s + 1)
//   linearwarmupdecay            warm up, then lr * (T - t) / (T - warmup)
//   cosineannealing              lr_end + (lr - lr_end)(1 + cos(pi t / T)) / 2
//   cosineannealingwarmup        warm up, then lr * (lr_end + (1 - lr_end)(1 + cos(pi p)) / 2)
//   cosineannealingwarmrestarts  cosineannealing of period T_0 = T / n_restart_cycles (integer
//                                division, at least 1), restarting: t mod T_0 in place of t
// where t = s + 1 and warm-up is (t + 1) / warmup for t < warmup. A warm-up of 0 steps means
// none (the seed divides by zero there).
//
// lr_decay_steps d > 0 (SAELens 6): the schedule above runs over T - d steps in place of T, and
// the last d steps decay linearly to 0 from the schedule's end value E (constant and
// constantwithwarmup: lr; cosineannealing and cosineannealingwarmrestarts: lr_end;
// cosineannealingwarmup: lr * lr_end; linearwarmupdecay already ends at 0 and is refused with
// a decay by the config): step s >= T - d uses E * (1 - (s - (T - d)) / d), so its first step
// uses E and its last E / d, as SAELens's final LinearLR(start_factor E / lr, end_factor 0).
double LearningRateAt(const TrainerOptions& options, int64_t step);

// The L1 coefficient at step `step`: l1_coefficient * min(1, step / l1_warm_up_steps)
// (SAELens's L1Scheduler: 0 at the first step when warming up).
double L1CoefficientAt(const TrainerOptions& options, int64_t step);

// JumpReLU's sparsity coefficient at `step`, with the same warm-up rule as L1CoefficientAt
// (SAELens 6's CoefficientScheduler): l0_coefficient * min(1, step / l0_warm_up_steps).
double L0CoefficientAt(const TrainerOptions& options, int64_t step);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_LR_SCHEDULE_H_
