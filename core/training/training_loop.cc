#include "core/training/training_loop.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/training/checkpoint.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::training {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

bool IsSet(const std::atomic<bool>* flag) { return flag != nullptr && flag->load(); }

}  // namespace

std::vector<int64_t> CheckpointSteps(const config::RunConfig& config) {
  const int64_t total_steps = config::TotalTrainingSteps(config);
  std::vector<int64_t> steps;
  for (int64_t i = 1; i <= config.n_checkpoints; ++i) {
    steps.push_back(i * total_steps / config.n_checkpoints);
  }
  return steps;
}

std::string CheckpointRoot(const config::RunConfig& config, const std::string& output_dir) {
  return std::filesystem::path(config.checkpoint_path).is_absolute()
             ? config.checkpoint_path
             : output_dir + "/" + config.checkpoint_path;
}

int64_t InitialSampleRows(const config::RunConfig& config) {
  return std::max<int64_t>(1, config.n_batches_in_buffer / 2) * config.store_batch_size *
         config.context_size;
}

absl::StatusOr<TrainingLoopResult> RunTrainingLoop(const config::RunConfig& config,
                                                   sparse::SaeTrainer& trainer,
                                                   sparse::Collective* collective,
                                                   TrainingBatches& batches,
                                                   const TrainingLoopOptions& options) {
  const int rank = collective != nullptr ? collective->rank() : 0;
  const int64_t total_steps = config::TotalTrainingSteps(config);
  const int64_t global_batch = config.train_batch_size;
  TrainingMetrics* series = options.series;
  auto cancelled = [] { return absl::CancelledError("training abandoned"); };

  at::Tensor sample;
  if (options.initialize_decoder_bias && rank == 0) {
    SAE_ASSIGN_OR_RETURN(sample, batches.InitialSample(InitialSampleRows(config)));
  }
  if (trainer.NeedsActivationScale()) {
    // SAELens 6 reads these batches from the stream without training on them.
    SAE_RETURN_IF_ERROR(trainer.EstimateActivationScale([&] { return batches.Next(); },
                                                        config.n_batches_for_norm_estimate));
    if (rank == 0) {
      spdlog::info("normalize_activations expected_average_only_in: scale {:.6g} from {} batches",
                   trainer.activation_scale(), config.n_batches_for_norm_estimate);
    }
  }
  if (options.initialize_decoder_bias) {
    // In a group, rank 0's sample decides and the trainer broadcasts the result.
    SAE_RETURN_IF_ERROR(trainer.InitializeDecoderBias(sample));
  }

  TrainingLoopResult result;
  const std::vector<int64_t> checkpoint_steps = CheckpointSteps(config);
  const std::string checkpoint_root = CheckpointRoot(config, options.output_dir);
  auto checkpoint = [&]() -> absl::Status {
    SAE_ASSIGN_OR_RETURN(result.last_position, batches.CheckpointPosition());
    if (rank != 0) return absl::OkStatus();
    const std::string dir = checkpoint_root + "/" + CheckpointName(trainer.step());
    SAE_RETURN_IF_ERROR(MakeDirectories(checkpoint_root));
    SAE_RETURN_IF_ERROR(WriteCheckpoint(trainer, config, result.last_position, dir));
    result.last_checkpoint = dir;
    spdlog::info("checkpoint at step {}: {}", trainer.step(), dir);
    if (options.on_checkpoint) {
      SAE_RETURN_IF_ERROR(options.on_checkpoint(dir, trainer.step(), false));
    }
    return absl::OkStatus();
  };
  auto evaluate = [&](bool final) {
    if (rank != 0 || !options.evaluate) return;
    absl::Status evaluated = options.evaluate(trainer, trainer.step(), final);
    if (!evaluated.ok()) {
      spdlog::warn("evaluation at step {} failed ({}); training goes on", trainer.step(),
                   std::string(evaluated.message()));
    }
  };
  sparse::BatchSource resample_source = [&] { return batches.NextForResampling(); };

  if (series != nullptr) series->RecordRunSize(trainer.options().sae.d_sae, total_steps);
  const int64_t first_step = trainer.step();
  const auto loop_start = Clock::now();
  auto tokens_per_second = [&] {
    const double elapsed = Seconds(loop_start);
    return elapsed > 0 ? static_cast<double>((trainer.step() - first_step) * global_batch) / elapsed
                       : 0.0;
  };
  const bool grouped = collective != nullptr && collective->world_size() > 1;
  while (trainer.step() < total_steps) {
    if (IsSet(options.abort)) return cancelled();
    // Alone, a stop is seen before the next batch is taken, so that the checkpoint's data
    // position is exactly where training stopped.
    bool stop = !grouped && IsSet(options.stop);
    if (stop) {
      SAE_RETURN_IF_ERROR(checkpoint());
      result.stopped = true;
      break;
    }
    const auto wait_start = Clock::now();
    absl::StatusOr<at::Tensor> batch = batches.Next();
    const double waited = Seconds(wait_start);
    result.wait_seconds += waited;
    if (series != nullptr) series->RecordWaitForData(waited);
    if (!batch.ok() && IsSet(options.abort)) return cancelled();
    // Every rank learns whether some rank must stop or has no data before the step's
    // collectives, so that all of them leave at the same step.
    if (grouped) {
      at::Tensor flags =
          at::tensor({IsSet(options.stop) ? 1.0f : 0.0f, batch.ok() ? 0.0f : 1.0f});
      SAE_RETURN_IF_ERROR(collective->AllReduceSum(flags));
      collective->TakeCollectiveSeconds();
      if (!batch.ok()) return batch.status();
      if (flags[1].item<float>() > 0) {
        return absl::UnavailableError(
            "another trainer rank could not get its batch; its log says why");
      }
      stop = flags[0].item<float>() > 0;
    }
    if (!batch.ok()) return batch.status();
    if (stop) {
      SAE_RETURN_IF_ERROR(checkpoint());
      result.stopped = true;
      break;
    }

    const auto step_start = Clock::now();
    SAE_ASSIGN_OR_RETURN(sparse::StepMetrics m, trainer.Step(*batch, resample_source));
    const double step_seconds = Seconds(step_start);
    if (collective != nullptr) {
      const double reduce_seconds = collective->TakeCollectiveSeconds();
      result.collective_seconds += reduce_seconds;
      if (series != nullptr && collective->world_size() > 1) {
        series->RecordAllReduce(reduce_seconds);
      }
    }
    if (series != nullptr) series->RecordStep(m, step_seconds, batch->size(0));
    batches.OnStep(m);
    if (trainer.step() == first_step + 1) result.first = m;
    result.last = m;
    const double tps = tokens_per_second();
    if (options.on_step) options.on_step(m, tps, total_steps);
    if (options.log_progress && rank == 0 &&
        (m.step % std::max<int64_t>(1, config.wandb_log_frequency) == 0 ||
         m.step == total_steps)) {
      spdlog::info(
          "step {}/{} tokens {} loss {:.5g} mse {:.5g} l0 {:.3g} ev {:.3f} dead {} "
          "{:.0f} tok/s (waited {:.1f} s for data)",
          m.step, total_steps, m.tokens, m.overall_loss, m.mse_loss, m.l0, m.explained_variance,
          m.dead_features, tps, result.wait_seconds);
    }
    if (options.evaluate_every > 0 && m.step % options.evaluate_every == 0 &&
        m.step != total_steps) {
      evaluate(false);
    }
    if (std::find(checkpoint_steps.begin(), checkpoint_steps.end(), trainer.step()) !=
        checkpoint_steps.end()) {
      SAE_RETURN_IF_ERROR(checkpoint());
    }
  }
  result.seconds = Seconds(loop_start);
  result.steps = trainer.step();
  result.tokens = trainer.tokens_seen();
  result.tokens_per_second = tokens_per_second();
  if (!result.stopped && rank == 0) {
    {
      result.final_dir = options.output_dir + "/final";
      SAE_RETURN_IF_ERROR(ExportSae(trainer, config, result.final_dir));
      spdlog::info("final SAE after {} steps ({} tokens): {}", result.steps, result.tokens,
                   result.final_dir);
      // After the export, so that the evaluation can write its results beside the SAE.
      evaluate(true);
      if (options.on_checkpoint) {
        SAE_RETURN_IF_ERROR(options.on_checkpoint(result.final_dir, trainer.step(), true));
      }
    }
  }
  return result;
}

}  // namespace sae::training
