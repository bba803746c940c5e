#include "core/training/local_training.h"

#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/training/activation_source.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/training/run_evaluation.h"
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

}  // namespace

absl::StatusOr<LocalTrainingResult> RunLocalTraining(config::RunConfig config,
                                                     const LocalTrainingOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  SAE_ASSIGN_OR_RETURN(RunAssets assets, LoadRunAssets(config, !config.use_cached_activations));
  SAE_ASSIGN_OR_RETURN(sparse::TrainerOptions trainer_options, TrainerOptionsFor(config));
  SAE_RETURN_IF_ERROR(MakeDirectories(options.output_dir));
  SAE_RETURN_IF_ERROR(
      WriteFileAtomically(options.output_dir + "/run.yaml", config::ToYaml(config)));

  std::optional<sparse::SaeParameters> pretrained;
  if (!options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(pretrained, PretrainedSaeFor(config, trainer_options));
  }
  auto trainer = pretrained
                     ? std::make_unique<sparse::SaeTrainer>(trainer_options, *pretrained, nullptr)
                     : std::make_unique<sparse::SaeTrainer>(trainer_options, nullptr);

  std::unique_ptr<ActivationSource> source;
  if (options.resume_dir) {
    SAE_ASSIGN_OR_RETURN(auto extra, ReadCheckpoint(*options.resume_dir, *trainer));
    auto data = extra.find(kDataPositionKey);
    if (data == extra.end()) {
      return absl::InvalidArgumentError(absl::StrCat(*options.resume_dir, " has no data position"));
    }
    SAE_ASSIGN_OR_RETURN(source, OpenActivationSource(config, assets, &data->second));
    spdlog::info("resumed from {} at step {} ({} tokens)", *options.resume_dir, trainer->step(),
                 trainer->tokens_seen());
  } else {
    SAE_ASSIGN_OR_RETURN(source, OpenActivationSource(config, assets));
  }

  std::unique_ptr<TrainingMetrics> series;
  if (options.metrics != nullptr) {
    SAE_ASSIGN_OR_RETURN(series, TrainingMetrics::Create(*options.metrics, options.run_id, 0));
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<RunEvaluator> evaluator, RunEvaluator::Create(config, assets));
  std::optional<eval::EvalResults> final_eval;
  SourceBatches batches(*source, config.train_batch_size);
  TrainingLoopOptions loop;
  loop.output_dir = options.output_dir;
  loop.initialize_decoder_bias = !options.resume_dir && !config.from_pretrained_path;
  loop.stop = options.interrupt;
  loop.series = series.get();
  loop.on_step = options.on_step;
  if (evaluator != nullptr) {
    loop.evaluate_every = evaluator->every_steps();
    loop.evaluate = [&](const sparse::SaeTrainer& trained, int64_t step,
                        bool final) -> absl::Status {
      SAE_ASSIGN_OR_RETURN(eval::EvalResults results, evaluator->Evaluate(trained));
      if (options.on_eval) {
        options.on_eval(results, step, final);
      } else {
        spdlog::info("evaluation at step {}: {}", step, EvalSummaryLine(results));
      }
      if (!final) return absl::OkStatus();
      final_eval = results;
      return WriteFileAtomically(options.output_dir + "/final/eval_results.json",
                                 eval::ToJson(results).dump(2) + "\n");
    };
  }
  SAE_ASSIGN_OR_RETURN(TrainingLoopResult trained,
                       RunTrainingLoop(config, *trainer, nullptr, batches, loop));

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
  result.final_eval = final_eval;
  return result;
}

}  // namespace sae::training
