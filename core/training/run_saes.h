// The SAEs of a run as a process that trains or feeds them sees them: every child of the run
// (core/config/sweep.h ExpandSaes) resolved against the model, and where each one's columns lie
// in a batch that holds every hook of the run side by side. Shared by the activation server
// (which captures the hooks) and the trainer service (which trains one SAE per child), so that
// both agree on the columns; `saectl train` places them the same way (local_training.cc).
//
// Thread safety: pure functions.
#ifndef SAE_CORE_TRAINING_RUN_SAES_H_
#define SAE_CORE_TRAINING_RUN_SAES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/model/hook_point.h"

namespace sae::training {

// One SAE of a run, resolved.
struct RunSae {
  std::string name;           // "" for a run of one SAE
  config::RunConfig config;   // resolved (d_in, resolved hook)
  int64_t first_column = 0;   // its columns: [first_column, first_column + d_in) of a batch
};

struct RunSaes {
  std::vector<RunSae> saes;  // in the run's order (sweep.h)
  // The hooks captured after the first SAE's (data::ActivationStoreOptions::more_hooks), in
  // RunHookPoints order, without repeats.
  std::vector<model::HookPoint> more_hooks;
  int64_t width = 0;  // columns of a batch: the sum of the hooks' widths
};

// The SAEs of `run` (a run of one SAE gives one named "", its config resolved), each resolved
// against the run's model (model_path's config.json); errors name the key, line and SAE.
absl::StatusOr<RunSaes> ResolveRunSaes(const config::RunConfig& run);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_RUN_SAES_H_
