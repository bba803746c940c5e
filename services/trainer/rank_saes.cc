#include "services/trainer/rank_saes.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "services/trainer/stream_batches.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {

absl::StatusOr<std::vector<RankSae>> MakeRankSaes(std::vector<training::RunSae> run_saes,
                                                  bool many, int rank,
                                                  const std::string& output_dir) {
  std::vector<RankSae> saes;
  for (training::RunSae& run_sae : run_saes) {
    RankSae sae;
    sae.run = std::move(run_sae);
    SAE_ASSIGN_OR_RETURN(sae.options, training::TrainerOptionsFor(sae.run.config));
    sae.output_dir = many ? output_dir + "/saes/" + sae.run.name : output_dir;
    if (many && rank == 0) {
      SAE_RETURN_IF_ERROR(MakeDirectories(sae.output_dir));
      SAE_RETURN_IF_ERROR(WriteFileAtomically(sae.output_dir + "/run.yaml",
                                              config::ToYaml(sae.run.config)));
    }
    saes.push_back(std::move(sae));
  }
  return saes;
}

absl::StatusOr<std::vector<std::optional<sparse::SaeParameters>>> PretrainedSaes(
    const std::vector<RankSae>& saes) {
  std::vector<std::optional<sparse::SaeParameters>> pretrained(saes.size());
  for (size_t i = 0; i < saes.size(); ++i) {
    SAE_ASSIGN_OR_RETURN(pretrained[i],
                         training::PretrainedSaeFor(saes[i].run.config, saes[i].options));
  }
  return pretrained;
}

void CreateSaeTrainers(std::vector<RankSae>& saes,
                       const std::vector<std::optional<sparse::SaeParameters>>& pretrained,
                       sparse::Collective* collective) {
  for (size_t i = 0; i < saes.size(); ++i) {
    saes[i].trainer =
        i < pretrained.size() && pretrained[i]
            ? std::make_unique<sparse::SaeTrainer>(saes[i].options, *pretrained[i], collective)
            : std::make_unique<sparse::SaeTrainer>(saes[i].options, collective);
  }
}

absl::StatusOr<std::vector<std::string>> ResumeSaes(const std::string& resume_dir, bool many,
                                                    std::vector<RankSae>& saes) {
  std::vector<std::string> known_cursors;
  for (size_t i = 0; i < saes.size(); ++i) {
    const std::string dir = many ? resume_dir + "/saes/" + saes[i].run.name : resume_dir;
    SAE_ASSIGN_OR_RETURN(auto extra, training::ReadCheckpoint(dir, *saes[i].trainer));
    if (i == 0) {
      SAE_ASSIGN_OR_RETURN(known_cursors, CheckpointCursors(extra, dir));
    }
    spdlog::info("{}resumed from {} at step {} ({} tokens)",
                 many ? absl::StrCat("[", saes[i].run.name, "] ") : "", dir,
                 saes[i].trainer->step(), saes[i].trainer->tokens_seen());
  }
  return known_cursors;
}

absl::StatusOr<std::string> GatherFinalSaes(const std::string& output_dir,
                                            const std::vector<RankSae>& saes) {
  namespace fs = std::filesystem;
  const std::string gathered = output_dir + "/final_saes";
  std::error_code ec;
  fs::remove_all(gathered, ec);
  for (const RankSae& sae : saes) {
    const std::string to = gathered + "/saes/" + sae.run.name;
    SAE_RETURN_IF_ERROR(MakeDirectories(to));
    fs::copy(sae.output_dir + "/final", to, fs::copy_options::recursive, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("cannot gather the final SAE ", sae.run.name,
                                              " into ", to, ": ", ec.message()));
    }
  }
  SAE_ASSIGN_OR_RETURN(std::string run_yaml, ReadFile(output_dir + "/run.yaml"));
  SAE_RETURN_IF_ERROR(WriteFileAtomically(gathered + "/run.yaml", run_yaml));
  return gathered;
}


}  // namespace sae::trainer
