// The SAEs one trainer rank trains (services/trainer/distributed_training.cc): the run's one
// SAE, or every child of a run of many (core/config/sweep.h), each with its trainer, series and
// output folder.
#ifndef SAE_SERVICES_TRAINER_RANK_SAES_H_
#define SAE_SERVICES_TRAINER_RANK_SAES_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/sae/collective.h"
#include "core/sae/sae_trainer.h"
#include "core/training/run_saes.h"
#include "core/training/training_metrics.h"

namespace sae::trainer {

// One SAE this rank trains: a child of the run's sweep (core/config/sweep.h), or the run.
struct RankSae {
  training::RunSae run;  // name, resolved config, columns
  sparse::TrainerOptions options;
  std::unique_ptr<sparse::SaeTrainer> trainer;
  std::unique_ptr<training::TrainingMetrics> series;  // many SAEs: its own (sae label)
  std::string output_dir;  // run.yaml (many SAEs) and final/
};

// `run_saes` as this rank's SAEs, with their trainer options; a run of many writes each SAE's
// run.yaml under output_dir/saes/<name>/ on rank 0. Trainers are made by CreateSaeTrainers.
absl::StatusOr<std::vector<RankSae>> MakeRankSaes(std::vector<training::RunSae> run_saes,
                                                  bool many, int rank,
                                                  const std::string& output_dir);

// Each SAE's pretrained start (from_pretrained_path), checked against its config.
absl::StatusOr<std::vector<std::optional<sparse::SaeParameters>>> PretrainedSaes(
    const std::vector<RankSae>& saes);

// The trainers, from `pretrained` where given (empty: every SAE freshly initialised).
void CreateSaeTrainers(std::vector<RankSae>& saes,
                       const std::vector<std::optional<sparse::SaeParameters>>& pretrained,
                       sparse::Collective* collective);

// Resumes every SAE from the checkpoint folder (a run of many: its saes/<name>/, whose data
// positions are one and the same); returns the data cursors stored with it.
absl::StatusOr<std::vector<std::string>> ResumeSaes(const std::string& resume_dir, bool many,
                                                    std::vector<RankSae>& saes);

// A run of many SAEs uploads one checkpoint per step that holds every SAE under saes/<name>/
// (the step's folder as the loop wrote it). The final SAEs are gathered the same way: a copy
// of each SAE's final/ under output_dir/final_saes/saes/<name>/.
absl::StatusOr<std::string> GatherFinalSaes(const std::string& output_dir,
                                            const std::vector<RankSae>& saes);

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_RANK_SAES_H_
