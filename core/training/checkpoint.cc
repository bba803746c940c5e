#include "core/training/checkpoint.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/saelens.h"
#include "core/sae/saelens_parameters.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::training {

std::string CheckpointName(int64_t step) { return absl::StrFormat("step_%08d", step); }

absl::Status ExportSae(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                       const std::string& dir) {
  io::SaeLensSae sae;
  sae.metadata = SaeLensMetadataFor(config);
  // expected_average_only_in's factor is folded into the weights; constant_norm_rescale stays
  // in cfg.json, applied at inference (SAELens 6 does both the same way).
  sparse::ExportTensors(trainer.InferenceParameters(), config.architecture, sae);
  sae.metadata.normalize_activations =
      std::string(config::ToString(trainer.InferenceOptions().normalize_activations));
  sae.sparsity = at::log10(trainer.FeatureSparsity() + 1e-10);
  sae.cfg = {{"training_tokens", trainer.tokens_seen()},
             {"training_steps", trainer.step()},
             {"l1_coefficient", config.l1_coefficient},
             {"lr", config.lr}};
  if (trainer.activation_scale() > 0) {
    sae.cfg["normalize_activations_trained"] = "expected_average_only_in";
    sae.cfg["activation_norm_scaling_factor"] = trainer.activation_scale();
  }
  // The training keys of the SAELens 6 architectures (the folder itself is a jumprelu or gated
  // SAE for inference; batchtopk and matryoshka_batchtopk export as jumprelu, as SAELens does).
  switch (config.architecture) {
    case config::Architecture::kBatchTopK:
    case config::Architecture::kMatryoshkaBatchTopK:
      sae.cfg["trained_architecture"] = std::string(config::ToString(config.architecture));
      sae.cfg["k"] = config.k.value_or(0);
      sae.cfg["topk_threshold_lr"] = config.topk_threshold_lr;
      sae.cfg["aux_k_coefficient"] = config.aux_k_coefficient;
      if (!config.matryoshka_widths.empty()) {
        sae.cfg["matryoshka_widths"] = trainer.options().sae.matryoshka_widths;
      }
      break;
    case config::Architecture::kJumpReLU:
      sae.cfg["jumprelu_init_threshold"] = config.jumprelu_init_threshold;
      sae.cfg["jumprelu_bandwidth"] = config.jumprelu_bandwidth;
      sae.cfg["jumprelu_sparsity_loss_mode"] =
          std::string(config::ToString(config.jumprelu_sparsity_loss_mode));
      sae.cfg["jumprelu_tanh_scale"] = config.jumprelu_tanh_scale;
      if (config.target_l0) sae.cfg["target_l0"] = *config.target_l0;
      sae.cfg["jumprelu_ste_to_input"] = config.jumprelu_ste_to_input;
      sae.cfg["l0_coefficient"] = config.l0_coefficient;
      sae.cfg["l0_warm_up_steps"] = config.l0_warm_up_steps;
      sae.cfg["pre_act_loss_coefficient"] =
          config.pre_act_loss_coefficient ? nlohmann::json(*config.pre_act_loss_coefficient)
                                          : nlohmann::json();
      break;
    default:
      break;
  }
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
