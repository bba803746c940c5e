// The on-disk layout of a training checkpoint, shared by `saectl train` and the trainers:
//
//   DIR/state.json, DIR/state.safetensors   SaeTrainer::SaveState: parameters, Adam, counters,
//                                           RNG, and the data position (extra "data")
//   DIR/sae/                                the SAE at that step in SAELens's format
//   DIR/run.yaml                            the resolved run config
//   DIR/checksums.sha256                    the SHA-256 of every other file (sha256sum -c reads
//                                           it), checked before a resume loads anything
//
// A checkpoint is written to DIR.partial and renamed into place, so DIR is complete or absent;
// a write that fails (a full disk) removes DIR.partial and leaves the older checkpoints alone.
#ifndef SAE_CORE_TRAINING_CHECKPOINT_H_
#define SAE_CORE_TRAINING_CHECKPOINT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "core/sae/sae_trainer.h"

namespace sae::training {

inline constexpr char kDataPositionKey[] = "data";
inline constexpr char kChecksumsFile[] = "checksums.sha256";

// "step_00000123".
std::string CheckpointName(int64_t step);

// Writes the SAE in SAELens format: parameters, cfg.json from `config`, and sparsity (log10 of
// the feature frequency over the current window).
absl::Status ExportSae(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                       const std::string& dir);

// Writes a checkpoint (see above) with `extra` (e.g. kDataPositionKey -> resume token). On
// failure nothing of it is left; ResourceExhausted, naming the folder and what to do, when the
// disk is full.
absl::Status WriteCheckpoint(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                             const std::map<std::string, std::string>& extra,
                             const std::string& dir);

// Checks every file of a checkpoint folder against its checksums.sha256: DataLoss naming the
// checkpoint and the file that does not match (or is missing). OK, with a warning in the log,
// for a folder written before checksums existed (no checksums.sha256).
absl::Status VerifyCheckpointChecksums(const std::string& dir);

// Restores `trainer` from a checkpoint folder and returns its extras, after checking its
// checksums (DataLoss, nothing loaded, when a file does not match). NotFound when `dir` holds
// no checkpoint.
absl::StatusOr<std::map<std::string, std::string>> ReadCheckpoint(const std::string& dir,
                                                                  sparse::SaeTrainer& trainer);

}  // namespace sae::training

#endif  // SAE_CORE_TRAINING_CHECKPOINT_H_
