// The on-disk layout of a training checkpoint, shared by `saectl train` and the trainers:
//
//   DIR/state.json, DIR/state.safetensors   SaeTrainer::SaveState: parameters, Adam, counters,
//                                           RNG, and the data position (extra "data")
//   DIR/sae/                                the SAE at that step in SAELens's format
//   DIR/run.yaml                            the resolved run config
//
// A checkpoint is written to DIR.partial and renamed into place, so DIR is complete or absent.
#ifndef SAE_CORE_TRAINING_CHECKPOINT_H_
#define SAE_CORE_TRAINING_CHECKPOINT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/sae/sae_trainer.h"

namespace sae::training {

inline constexpr char kDataPositionKey[] = "data";

// "step_00000123".
std::string CheckpointName(int64_t step);

// Writes the SAE in SAELens format: parameters, cfg.json from `config`, and sparsity (log10 of
// the feature frequency over the current window).
absl::Status ExportSae(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                       const std::string& dir);

// Writes a checkpoint (see above) with `extra` (e.g. kDataPositionKey -> resume token).
absl::Status WriteCheckpoint(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                             const std::map<std::string, std::string>& extra,
                             const std::string& dir);

// Restores `trainer` from a checkpoint folder and returns its extras. NotFound when `dir` holds
// no checkpoint.
absl::StatusOr<std::map<std::string, std::string>> ReadCheckpoint(const std::string& dir,
                                                                  sparse::SaeTrainer& trainer);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_CHECKPOINT_H_
