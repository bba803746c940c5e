#include "core/training/local_training.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "core/training/activation_source.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/training/training_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::training {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

}  // namespace

absl::StatusOr<LocalTrainingResult> RunLocalTraining(config::RunConfig config,
                                                     const LocalTrainingOptions& options) {
  const auto start = Clock::now();
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
    if (!config.from_pretrained_path) {
      // The seed initialises b_dec from its first storage buffer: half the mixing buffer.
      const int64_t sample_rows = std::max<int64_t>(1, config.n_batches_in_buffer / 2) *
                                  config.store_batch_size * config.context_size;
      SAE_ASSIGN_OR_RETURN(at::Tensor sample, source->InitialSample(sample_rows));
      SAE_RETURN_IF_ERROR(trainer->InitializeDecoderBias(sample));
    }
  }

  std::unique_ptr<TrainingMetrics> series;
  if (options.metrics != nullptr) {
    SAE_ASSIGN_OR_RETURN(series, TrainingMetrics::Create(*options.metrics, options.run_id, 0));
  }

  const int64_t total_steps = config::TotalTrainingSteps(config);
  const int64_t batch = config.train_batch_size;
  std::vector<int64_t> checkpoint_steps;
  for (int64_t i = 1; i <= config.n_checkpoints; ++i) {
    checkpoint_steps.push_back(i * total_steps / config.n_checkpoints);
  }
  const std::string checkpoint_root = std::filesystem::path(config.checkpoint_path).is_absolute()
                                          ? config.checkpoint_path
                                          : options.output_dir + "/" + config.checkpoint_path;
  auto resample_source = [&]() { return source->NextBatch(batch); };

  LocalTrainingResult result;
  const int64_t first_step = trainer->step();
  const auto loop_start = Clock::now();
  auto checkpoint = [&]() -> absl::Status {
    std::string dir = checkpoint_root + "/" + CheckpointName(trainer->step());
    SAE_RETURN_IF_ERROR(MakeDirectories(checkpoint_root));
    SAE_RETURN_IF_ERROR(
        WriteCheckpoint(*trainer, config, {{kDataPositionKey, source->ResumeToken()}}, dir));
    result.last_checkpoint = dir;
    spdlog::info("checkpoint at step {}: {}", trainer->step(), dir);
    return absl::OkStatus();
  };

  while (trainer->step() < total_steps) {
    if (options.interrupt != nullptr && options.interrupt->load()) {
      SAE_RETURN_IF_ERROR(checkpoint());
      result.interrupted = true;
      break;
    }
    const auto wait_start = Clock::now();
    SAE_ASSIGN_OR_RETURN(at::Tensor x, source->NextBatch(batch));
    const double wait = Seconds(wait_start);
    const auto step_start = Clock::now();
    SAE_ASSIGN_OR_RETURN(sparse::StepMetrics m, trainer->Step(x, resample_source));
    const double step_seconds = Seconds(step_start);
    result.last = m;
    const double elapsed = Seconds(loop_start);
    const double tps =
        elapsed > 0 ? static_cast<double>((trainer->step() - first_step) * batch) / elapsed : 0;
    if (series) {
      series->RecordWaitForData(wait);
      series->RecordStep(m, step_seconds + wait, batch);
    }
    if (options.on_step) options.on_step(m, tps, total_steps);
    if (std::find(checkpoint_steps.begin(), checkpoint_steps.end(), trainer->step()) !=
        checkpoint_steps.end()) {
      SAE_RETURN_IF_ERROR(checkpoint());
    }
  }
  result.steps = trainer->step();
  result.tokens = trainer->tokens_seen();
  result.seconds = Seconds(start);
  const double loop_seconds = Seconds(loop_start);
  result.tokens_per_second =
      loop_seconds > 0 ? static_cast<double>((trainer->step() - first_step) * batch) / loop_seconds
                       : 0;
  if (!result.interrupted) {
    result.final_dir = options.output_dir + "/final";
    SAE_RETURN_IF_ERROR(ExportSae(*trainer, config, result.final_dir));
  }
  return result;
}

}  // namespace sae::training
