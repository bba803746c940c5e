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

// The columns of `batch` [rows, width] that `sae` trains on, contiguous.
at::Tensor Columns(const LoopSae& sae, const at::Tensor& batch) {
  if (!batch.defined()) return batch;
  const int64_t d_in = sae.trainer->options().sae.d_in;
  if (sae.first_column == 0 && batch.size(1) == d_in) return batch;
  return batch.narrow(1, sae.first_column, d_in).contiguous();
}

// Writes the checkpoint of every SAE at this step and returns their folders: `dir` itself for
// a run of one SAE (unnamed), else dir/saes/<name> for each, all written under dir.partial and
// moved into place together, with the run's config in dir/run.yaml.
absl::StatusOr<std::vector<std::string>> WriteCheckpoints(
    const std::vector<LoopSae>& saes, const config::RunConfig& config,
    const std::map<std::string, std::string>& position, const std::string& dir) {
  if (saes.size() == 1 && saes.front().name.empty()) {
    SAE_RETURN_IF_ERROR(WriteCheckpoint(*saes.front().trainer, config, position, dir));
    return std::vector<std::string>{dir};
  }
  const std::string partial = dir + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(partial, ec);
  absl::Status written = [&]() -> absl::Status {
    SAE_RETURN_IF_ERROR(MakeDirectories(partial + "/saes"));
    for (const LoopSae& sae : saes) {
      SAE_RETURN_IF_ERROR(
          WriteCheckpoint(*sae.trainer, *sae.config, position, partial + "/saes/" + sae.name));
    }
    return WriteFileAtomically(partial + "/run.yaml", config::ToYaml(config));
  }();
  if (!written.ok()) {
    // As for one SAE: nothing of a failed checkpoint stays.
    std::filesystem::remove_all(partial, ec);
    return written;
  }
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(partial, dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot move checkpoint into ", dir, ": ", ec.message()));
  }
  std::vector<std::string> dirs;
  for (const LoopSae& sae : saes) dirs.push_back(dir + "/saes/" + sae.name);
  return dirs;
}

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
  LoopSae sae;
  sae.config = &config;
  sae.trainer = &trainer;
  sae.output_dir = options.output_dir;
  sae.series = options.series;
  sae.on_step = options.on_step;
  sae.on_checkpoint = options.on_checkpoint;
  sae.evaluate = options.evaluate;
  return RunTrainingLoop(config, std::vector<LoopSae>{sae}, collective, batches, options);
}

absl::StatusOr<TrainingLoopResult> RunTrainingLoop(const config::RunConfig& config,
                                                   const std::vector<LoopSae>& saes,
                                                   sparse::Collective* collective,
                                                   TrainingBatches& batches,
                                                   const TrainingLoopOptions& options) {
  if (saes.empty()) return absl::InvalidArgumentError("the training loop needs an SAE");
  const int rank = collective != nullptr ? collective->rank() : 0;
  const int64_t total_steps = config::TotalTrainingSteps(config);
  const int64_t global_batch = config.train_batch_size;
  auto cancelled = [] { return absl::CancelledError("training abandoned"); };
  sparse::SaeTrainer& lead = *saes.front().trainer;
  for (const LoopSae& sae : saes) {
    if (sae.trainer->step() != lead.step()) {
      return absl::FailedPreconditionError(
          absl::StrCat("SAE ", sae.name, " is at step ", sae.trainer->step(), ", SAE ",
                       saes.front().name, " at step ", lead.step(),
                       ": the SAEs of a run resume from checkpoints of the same step"));
    }
  }
  const bool named = saes.size() > 1 || !saes.front().name.empty();
  auto label = [&](const LoopSae& sae) { return named ? absl::StrCat("[", sae.name, "] ") : ""; };

  at::Tensor sample;
  if (options.initialize_decoder_bias && rank == 0) {
    SAE_ASSIGN_OR_RETURN(sample, batches.InitialSample(InitialSampleRows(config)));
  }
  std::vector<const LoopSae*> scaled;
  for (const LoopSae& sae : saes) {
    if (sae.trainer->NeedsActivationScale()) scaled.push_back(&sae);
  }
  if (!scaled.empty()) {
    // SAELens 6 reads these batches from the stream without training on them; every SAE
    // that needs its factor sees its own columns of the same batches.
    for (int64_t i = 0; i < config.n_batches_for_norm_estimate; ++i) {
      SAE_ASSIGN_OR_RETURN(at::Tensor batch, batches.Next());
      for (const LoopSae* sae : scaled) {
        SAE_RETURN_IF_ERROR(sae->trainer->AddToActivationScaleEstimate(Columns(*sae, batch)));
      }
    }
    for (const LoopSae* sae : scaled) {
      SAE_RETURN_IF_ERROR(
          sae->trainer->FinishActivationScaleEstimate(config.n_batches_for_norm_estimate));
      if (rank == 0) {
        spdlog::info("{}normalize_activations expected_average_only_in: scale {:.6g} from {} batches",
                     label(*sae), sae->trainer->activation_scale(),
                     config.n_batches_for_norm_estimate);
      }
    }
  }
  if (options.initialize_decoder_bias) {
    // In a group, rank 0's sample decides and the trainer broadcasts the result.
    for (const LoopSae& sae : saes) {
      SAE_RETURN_IF_ERROR(sae.trainer->InitializeDecoderBias(Columns(sae, sample)));
    }
  }

  TrainingLoopResult result;
  result.saes.resize(saes.size());
  const std::vector<int64_t> checkpoint_steps = CheckpointSteps(config);
  const std::string checkpoint_root = CheckpointRoot(config, options.output_dir);
  auto checkpoint = [&]() -> absl::Status {
    SAE_ASSIGN_OR_RETURN(result.last_position, batches.CheckpointPosition());
    if (rank != 0) return absl::OkStatus();
    const std::string dir = checkpoint_root + "/" + CheckpointName(lead.step());
    SAE_RETURN_IF_ERROR(MakeDirectories(checkpoint_root));
    SAE_ASSIGN_OR_RETURN(std::vector<std::string> dirs,
                         WriteCheckpoints(saes, config, result.last_position, dir));
    result.last_checkpoint = dir;
    spdlog::info("checkpoint at step {}: {}", lead.step(), dir);
    for (size_t i = 0; i < saes.size(); ++i) {
      result.saes[i].last_checkpoint = dirs[i];
      if (saes[i].on_checkpoint) {
        SAE_RETURN_IF_ERROR(saes[i].on_checkpoint(dirs[i], lead.step(), false));
      }
    }
    return absl::OkStatus();
  };
  auto evaluate = [&](const LoopSae& sae, bool final) {
    if (rank != 0 || !sae.evaluate) return;
    absl::Status evaluated = sae.evaluate(*sae.trainer, sae.trainer->step(), final);
    if (!evaluated.ok()) {
      spdlog::warn("{}evaluation at step {} failed ({}); training goes on", label(sae),
                   sae.trainer->step(), std::string(evaluated.message()));
    }
  };
  // Resampling batches are drawn once per step and replayed to every SAE that resamples then,
  // so that the stream moves as it would for one of them alone.
  std::vector<at::Tensor> resampling_batches;

  for (const LoopSae& sae : saes) {
    if (sae.series != nullptr) {
      sae.series->RecordRunSize(sae.trainer->options().sae.d_sae, total_steps);
    }
  }
  const int64_t first_step = lead.step();
  const auto loop_start = Clock::now();
  auto tokens_per_second = [&] {
    const double elapsed = Seconds(loop_start);
    return elapsed > 0 ? static_cast<double>((lead.step() - first_step) * global_batch) / elapsed
                       : 0.0;
  };
  const bool grouped = collective != nullptr && collective->world_size() > 1;
  while (lead.step() < total_steps) {
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
    for (const LoopSae& sae : saes) {
      if (sae.series != nullptr) sae.series->RecordWaitForData(waited);
    }
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

    resampling_batches.clear();
    for (size_t i = 0; i < saes.size(); ++i) {
      const LoopSae& sae = saes[i];
      size_t drawn = 0;
      sparse::BatchSource resample_source = [&]() -> absl::StatusOr<at::Tensor> {
        if (drawn == resampling_batches.size()) {
          SAE_ASSIGN_OR_RETURN(at::Tensor more, batches.NextForResampling());
          resampling_batches.push_back(std::move(more));
        }
        return Columns(sae, resampling_batches[drawn++]);
      };
      const at::Tensor input = Columns(sae, *batch);
      const auto step_start = Clock::now();
      SAE_ASSIGN_OR_RETURN(sparse::StepMetrics m, sae.trainer->Step(input, resample_source));
      const double step_seconds = Seconds(step_start);
      if (collective != nullptr) {
        const double reduce_seconds = collective->TakeCollectiveSeconds();
        result.collective_seconds += reduce_seconds;
        if (sae.series != nullptr && collective->world_size() > 1) {
          sae.series->RecordAllReduce(reduce_seconds);
        }
      }
      if (sae.series != nullptr) sae.series->RecordStep(m, step_seconds, input.size(0));
      if (i == 0) batches.OnStep(m);
      if (sae.trainer->step() == first_step + 1) result.saes[i].first = m;
      result.saes[i].last = m;
      const double tps = tokens_per_second();
      if (sae.on_step) sae.on_step(m, tps, total_steps);
      if (options.log_progress && rank == 0 &&
          (m.step % std::max<int64_t>(1, config.wandb_log_frequency) == 0 ||
           m.step == total_steps)) {
        spdlog::info(
            "{}step {}/{} tokens {} loss {:.5g} mse {:.5g} l0 {:.3g} ev {:.3f} dead {} "
            "{:.0f} tok/s (waited {:.1f} s for data)",
            label(sae), m.step, total_steps, m.tokens, m.overall_loss, m.mse_loss, m.l0,
            m.explained_variance, m.dead_features, tps, result.wait_seconds);
      }
      if (options.evaluate_every > 0 && m.step % options.evaluate_every == 0 &&
          m.step != total_steps) {
        evaluate(sae, false);
      }
    }
    if (std::find(checkpoint_steps.begin(), checkpoint_steps.end(), lead.step()) !=
        checkpoint_steps.end()) {
      SAE_RETURN_IF_ERROR(checkpoint());
    }
  }
  result.seconds = Seconds(loop_start);
  result.steps = lead.step();
  result.tokens = lead.tokens_seen();
  result.tokens_per_second = tokens_per_second();
  if (!result.stopped && rank == 0) {
    for (size_t i = 0; i < saes.size(); ++i) {
      const LoopSae& sae = saes[i];
      result.saes[i].final_dir = sae.output_dir + "/final";
      SAE_RETURN_IF_ERROR(ExportSae(*sae.trainer, *sae.config, result.saes[i].final_dir));
      spdlog::info("{}final SAE after {} steps ({} tokens): {}", label(sae), result.steps,
                   result.tokens, result.saes[i].final_dir);
      // After the export, so that the evaluation can write its results beside the SAE.
      evaluate(sae, true);
      if (sae.on_checkpoint) {
        SAE_RETURN_IF_ERROR(sae.on_checkpoint(result.saes[i].final_dir, sae.trainer->step(), true));
      }
    }
  }
  result.final_dir = result.saes.front().final_dir;
  result.first = result.saes.front().first;
  result.last = result.saes.front().last;
  return result;
}

}  // namespace sae::training
