#include "core/training/local_training.h"

#include <chrono>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/config/sweep.h"
#include "core/training/activation_source.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/training/run_evaluation.h"
#include "core/training/run_saes.h"
#include "core/training/training_loop.h"
#include "core/training/training_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::training {
namespace {

// One process's batches: the whole global batch from an ActivationSource (GPT-2 over shard 0
// of 1, or an activation cache).
class SourceBatches final : public TrainingBatches {
 public:
  SourceBatches(ActivationSource& source, int64_t batch) : source_(source), batch_(batch) {}

  absl::StatusOr<at::Tensor> Next() override { return source_.NextBatch(batch_); }
  absl::StatusOr<at::Tensor> InitialSample(int64_t rows) override {
    return source_.InitialSample(rows);
  }
  absl::StatusOr<std::map<std::string, std::string>> CheckpointPosition() override {
    return std::map<std::string, std::string>{{kDataPositionKey, source_.ResumeToken()}};
  }

 private:
  ActivationSource& source_;
  const int64_t batch_;
};

// One SAE of the run as this process trains it.
struct LocalSae {
  std::string name;
  config::RunConfig config;  // resolved
  std::string output_dir;    // run.yaml (many SAEs) and final/
  int64_t first_column = 0;
  std::unique_ptr<sparse::SaeTrainer> trainer;
  std::unique_ptr<TrainingMetrics> series;
  std::unique_ptr<RunEvaluator> evaluator;
  std::optional<eval::EvalResults> final_eval;
};

}  // namespace

absl::StatusOr<LocalTrainingResult> RunLocalTraining(config::RunConfig config,
                                                     const LocalTrainingOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const bool many = config::TrainsManySaes(config);
  // Every SAE resolved, with its columns in the batch (run_saes.h, as the cluster places them).
  SAE_ASSIGN_OR_RETURN(RunSaes resolved, ResolveRunSaes(config));
  config::RunConfig first = resolved.saes.front().config;
  SAE_ASSIGN_OR_RETURN(RunAssets assets, LoadRunAssets(first, !config.use_cached_activations));
  std::vector<LocalSae> saes;
  for (RunSae& run_sae : resolved.saes) {
    LocalSae sae;
    sae.name = std::move(run_sae.name);
    sae.config = std::move(run_sae.config);
    sae.first_column = run_sae.first_column;
    sae.output_dir =
        sae.name.empty() ? options.output_dir : options.output_dir + "/saes/" + sae.name;
    saes.push_back(std::move(sae));
  }
  const std::vector<model::HookPoint>& more_hooks = resolved.more_hooks;
  // The loop's config: the run's shared keys (for one SAE, its resolved config).
  const config::RunConfig& run = many ? config : saes.front().config;
  SAE_RETURN_IF_ERROR(MakeDirectories(options.output_dir));
  SAE_RETURN_IF_ERROR(WriteFileAtomically(options.output_dir + "/run.yaml", config::ToYaml(run)));

  std::optional<std::string> data_position;
  for (LocalSae& sae : saes) {
    SAE_ASSIGN_OR_RETURN(sparse::TrainerOptions trainer_options, TrainerOptionsFor(sae.config));
    if (many) {
      SAE_RETURN_IF_ERROR(MakeDirectories(sae.output_dir));
      SAE_RETURN_IF_ERROR(
          WriteFileAtomically(sae.output_dir + "/run.yaml", config::ToYaml(sae.config)));
    }
    std::optional<sparse::SaeParameters> pretrained;
    if (!options.resume_dir) {
      SAE_ASSIGN_OR_RETURN(pretrained, PretrainedSaeFor(sae.config, trainer_options));
    }
    sae.trainer = pretrained
                      ? std::make_unique<sparse::SaeTrainer>(trainer_options, *pretrained, nullptr)
                      : std::make_unique<sparse::SaeTrainer>(trainer_options, nullptr);
    if (options.resume_dir) {
      const std::string dir =
          many ? *options.resume_dir + "/saes/" + sae.name : *options.resume_dir;
      SAE_ASSIGN_OR_RETURN(auto extra, ReadCheckpoint(dir, *sae.trainer));
      auto data = extra.find(kDataPositionKey);
      if (data == extra.end()) {
        return absl::InvalidArgumentError(absl::StrCat(dir, " has no data position"));
      }
      if (data_position && *data_position != data->second) {
        return absl::InvalidArgumentError(
            absl::StrCat(dir,
                         " continues the data from another position than the run's other SAEs: "
                         "resume from one step folder of this run"));
      }
      data_position = data->second;
      spdlog::info("{}resumed from {} at step {} ({} tokens)",
                   many ? absl::StrCat("[", sae.name, "] ") : "", dir, sae.trainer->step(),
                   sae.trainer->tokens_seen());
    }
    if (options.metrics != nullptr) {
      SAE_ASSIGN_OR_RETURN(
          sae.series,
          TrainingMetrics::Create(*options.metrics, options.run_id, 0, sae.name));
    }
    SAE_ASSIGN_OR_RETURN(sae.evaluator, RunEvaluator::Create(sae.config, assets));
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ActivationSource> source,
                       OpenActivationSource(saes.front().config, assets,
                                            data_position ? &*data_position : nullptr, more_hooks));

  SourceBatches batches(*source, run.train_batch_size);
  TrainingLoopOptions loop;
  loop.output_dir = options.output_dir;
  loop.initialize_decoder_bias = !options.resume_dir && !run.from_pretrained_path;
  loop.stop = options.interrupt;
  std::vector<LoopSae> loop_saes;
  for (LocalSae& sae : saes) {
    LoopSae entry;
    entry.name = sae.name;
    entry.config = &sae.config;
    entry.trainer = sae.trainer.get();
    entry.first_column = sae.first_column;
    entry.output_dir = sae.output_dir;
    entry.series = sae.series.get();
    if (options.on_step) {
      entry.on_step = [&options, name = sae.name](const sparse::StepMetrics& m, double tps,
                                                  int64_t total) {
        options.on_step(name, m, tps, total);
      };
    }
    if (sae.evaluator != nullptr) {
      loop.evaluate_every = sae.evaluator->every_steps();  // the same for every SAE
      entry.evaluate = [&options, &sae](const sparse::SaeTrainer& trained, int64_t step,
                                        bool final) -> absl::Status {
        SAE_ASSIGN_OR_RETURN(eval::EvalResults results, sae.evaluator->Evaluate(trained));
        if (options.on_eval) {
          options.on_eval(sae.name, results, step, final);
        } else {
          spdlog::info("{}evaluation at step {}: {}",
                       sae.name.empty() ? "" : absl::StrCat("[", sae.name, "] "), step,
                       EvalSummaryLine(results));
        }
        if (!final) return absl::OkStatus();
        sae.final_eval = results;
        return WriteFileAtomically(sae.output_dir + "/final/eval_results.json",
                                   eval::ToJson(results).dump(2) + "\n");
      };
    }
    loop_saes.push_back(std::move(entry));
  }
  SAE_ASSIGN_OR_RETURN(TrainingLoopResult trained,
                       RunTrainingLoop(run, loop_saes, nullptr, batches, loop));

  LocalTrainingResult result;
  result.steps = trained.steps;
  result.tokens = trained.tokens;
  result.interrupted = trained.stopped;
  result.final_dir = trained.final_dir;
  result.last_checkpoint = trained.last_checkpoint;
  result.tokens_per_second = trained.tokens_per_second;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.last = trained.last;
  result.final_eval = saes.front().final_eval;
  for (size_t i = 0; i < saes.size(); ++i) {
    result.saes.push_back({saes[i].name, trained.saes[i].final_dir, trained.saes[i].last_checkpoint,
                           trained.saes[i].last, saes[i].final_eval});
  }
  return result;
}

}  // namespace sae::training
