// Many SAEs in one run: run.yaml's `sweep:` (a grid over per-SAE training keys) and
// `hook_points:` (several hooks of the one model) turn one RunConfig into several child
// configs, one per SAE, that share one activation stream (docs/config.md, "Many SAEs in one
// run").
//
//   hook_points: [blocks.1.hook_resid_pre, blocks.2.hook_resid_pre]
//   sweep:
//     l1_coefficient: [4e-5, 8e-5]
//
// gives four SAEs, hooks outermost, then the swept keys in the order written, the last one
// varying fastest (Python's itertools.product):
//   blocks.1.hook_resid_pre/l1=4e-05, blocks.1.hook_resid_pre/l1=8e-05,
//   blocks.2.hook_resid_pre/l1=4e-05, blocks.2.hook_resid_pre/l1=8e-05.
//
// A child's name is its hook, then "/short=value" for each swept key with two or more values
// (SweepShortName; a key with one value sets it for every child and is left out of names).
// Values in names: integers in decimal, choices and booleans as written canonically, numbers
// as C's %g with the fewest significant digits that read back exactly (8e-05, 0.0003,
// 1.6e-05: Python's repr for these magnitudes). Names are relative folder paths: a child's
// outputs go to OUT/saes/<name>/.
//
// Only keys that do not change the activation stream may be swept (WhyNotSweepable):
// everything the model, the data, the mixing buffer, the batch, the schedule of checkpoints
// and evaluations, and the run's processes depend on is shared by the run's SAEs.
//
// Thread safety: pure functions.
#ifndef SAE_CORE_CONFIG_SWEEP_H_
#define SAE_CORE_CONFIG_SWEEP_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/run_config.h"
#include "core/model/hook_point.h"

namespace sae::config {

// One SAE of a run.
struct SaeChild {
  // "blocks.2.hook_resid_pre/l1=8e-05"; "" for a run of one SAE (no sweep:, no hook_points:).
  std::string name;
  // The config of that SAE alone: hook_point and the swept keys set, no sweep, no hook_points.
  // Validated (ValidateRunConfig); resolved when the parent was resolved.
  RunConfig config;
};

// Most SAEs one run may declare.
inline constexpr int kMaxSaesPerRun = 256;

// True when `config` declares several SAEs (sweep: or hook_points: written).
bool TrainsManySaes(const RunConfig& config);

// Why `key` may not be swept (a sentence naming what it changes), or "" when it may.
std::string WhyNotSweepable(absl::string_view key);

// The keys that may be swept, in schema order.
std::vector<std::string> SweepableKeys();

// The name of `key` in child names: "l1" for l1_coefficient, "aux_k" for aux_k_coefficient,
// "l0" for l0_coefficient, "expansion" for expansion_factor, "arch" for architecture,
// "schedule" for lr_scheduler_name, "warm_up" for lr_warm_up_steps; the key itself otherwise.
std::string SweepShortName(absl::string_view key);

// `canonical` (a value of `key` as ToYaml writes it) as it appears in child names.
std::string SweepValueName(absl::string_view key, absl::string_view canonical);

// The SAEs of `config`, in grid order (see the file comment): for a run of one SAE, one child
// named "" whose config is `config`. Each child is validated (ValidateRunConfig) and, when
// `config` is many SAEs, resolved against `dims` when given; an error names the child:
// "run.yaml:14: sweep.k: 512 is larger than d_sae 256; allowed: 1 to d_sae (SAE
// blocks.2.hook_resid_pre/k=512 of this run)". InvalidArgument beyond kMaxSaesPerRun SAEs.
absl::StatusOr<std::vector<SaeChild>> ExpandSaes(const RunConfig& config);
absl::StatusOr<std::vector<SaeChild>> ExpandSaes(const RunConfig& config,
                                                 const model::ModelDims& dims);

// The hooks a run trains on, without repeats, in the order written: hook_points, or
// hook_point alone.
std::vector<std::string> RunHookPoints(const RunConfig& config);

namespace internal {

// For ValidateRunConfig and ResolveAgainstModel of a config of many SAEs: checks sweep: and
// hook_points: (sweepable keys, no repeated values, at most kMaxSaesPerRun SAEs, a cache holds
// one hook), expands it and validates (or resolves, with `dims`) every child; the config's
// warnings become those of its children (a warning of only some children names them).
absl::Status ValidateManySaes(RunConfig& config, const model::ModelDims* dims);

}  // namespace internal
}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_SWEEP_H_
