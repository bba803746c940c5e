#include "core/training/checkpoint.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/saelens.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::training {

std::string CheckpointName(int64_t step) { return absl::StrFormat("step_%08d", step); }

absl::Status ExportSae(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                       const std::string& dir) {
  const sparse::SaeParameters& p = trainer.sae().params();
  io::SaeLensSae sae;
  sae.W_enc = p.W_enc;
  sae.b_enc = p.b_enc;
  sae.W_dec = p.W_dec;
  sae.b_dec = p.b_dec;
  sae.sparsity = at::log10(trainer.FeatureSparsity() + 1e-10);
  sae.metadata = SaeLensMetadataFor(config);
  sae.cfg = {{"training_tokens", trainer.tokens_seen()},
             {"training_steps", trainer.step()},
             {"l1_coefficient", config.l1_coefficient},
             {"lr", config.lr}};
  return io::WriteSaeLens(dir, sae);
}

absl::Status WriteCheckpoint(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                             const std::map<std::string, std::string>& extra,
                             const std::string& dir) {
  const std::string partial = dir + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(partial, ec);
  SAE_RETURN_IF_ERROR(MakeDirectories(partial));
  SAE_RETURN_IF_ERROR(trainer.SaveState(partial, extra));
  SAE_RETURN_IF_ERROR(ExportSae(trainer, config, partial + "/sae"));
  SAE_RETURN_IF_ERROR(WriteFileAtomically(partial + "/run.yaml", config::ToYaml(config)));
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(partial, dir, ec);
  if (ec)
    return absl::InternalError(
        absl::StrCat("cannot move checkpoint into ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ReadCheckpoint(const std::string& dir,
                                                                  sparse::SaeTrainer& trainer) {
  if (!std::filesystem::exists(dir + "/state.json")) {
    return absl::NotFoundError(absl::StrCat(dir, " is not a checkpoint (no state.json)"));
  }
  return trainer.LoadState(dir);
}

}  // namespace sae::training
