#include "core/model/gpt2_trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/io/tensor_io.h"
#include "core/model/gpt2_weights.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

namespace sae::model {
namespace {

int64_t StepsFor(const Gpt2TrainingOptions& o) {
  const int64_t per_step = o.batch_size * o.config.n_positions;
  return (o.total_tokens + per_step - 1) / per_step;
}

// What fixes a run's trajectory; a checkpoint records it and a resume must match it.
nlohmann::json RunIdentity(const Gpt2TrainingOptions& o, const TrainingCorpus& corpus,
                           int64_t total_steps, int64_t warmup_steps) {
  return {{"config", nlohmann::json::parse(o.config.ToJson())},
          {"seed", o.seed},
          {"total_steps", total_steps},
          {"batch_size", o.batch_size},
          {"lr", o.lr},
          {"min_lr", o.min_lr},
          {"warmup_steps", warmup_steps},
          {"beta1", o.adamw.beta1},
          {"beta2", o.adamw.beta2},
          {"eps", o.adamw.eps},
          {"weight_decay", o.adamw.weight_decay},
          {"max_grad_norm", o.adamw.max_grad_norm},
          {"corpus_fingerprint", absl::StrCat(corpus.fingerprint())},
          {"held_out_fraction", corpus.options().held_out_fraction}};
}

// Copies the parameters (detached, float32) for saving.
Gpt2Weights Snapshot(const Gpt2TrainingModel& model) {
  at::NoGradGuard no_grad;
  Gpt2Weights w = model.weights();
  auto copy = [](at::Tensor& t) { t = t.detach().to(at::kFloat).clone(); };
  copy(w.wte);
  copy(w.wpe);
  for (Gpt2BlockWeights& b : w.blocks) {
    for (at::Tensor* t : {&b.ln_1_weight, &b.ln_1_bias, &b.attn_c_attn_weight,
                          &b.attn_c_attn_bias, &b.attn_c_proj_weight, &b.attn_c_proj_bias,
                          &b.ln_2_weight, &b.ln_2_bias, &b.mlp_c_fc_weight, &b.mlp_c_fc_bias,
                          &b.mlp_c_proj_weight, &b.mlp_c_proj_bias}) {
      copy(*t);
    }
  }
  copy(w.ln_f_weight);
  copy(w.ln_f_bias);
  if (w.tied_lm_head) {
    w.lm_head = w.wte;
  } else {
    copy(w.lm_head);
  }
  return w;
}

absl::Status WriteCheckpoint(const Gpt2TrainingModel& model, const AdamW& optimizer,
                             const nlohmann::json& identity, int64_t contexts_served,
                             const std::string& dir) {
  const std::string partial = dir + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(partial, ec);
  SAE_RETURN_IF_ERROR(SaveGpt2(Snapshot(model), partial));
  SAE_RETURN_IF_ERROR(io::SaveTensors(partial + "/optimizer.safetensors", optimizer.State()));
  nlohmann::json state = {{"step", optimizer.step()},
                          {"contexts_served", contexts_served},
                          {"run", identity}};
  SAE_RETURN_IF_ERROR(WriteFileAtomically(partial + "/state.json", state.dump(2) + "\n"));
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(partial, dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot move the checkpoint into ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const TrainingCorpus& corpus, const Gpt2TrainingOptions& o) {
  auto bad = [](absl::string_view what) { return absl::InvalidArgumentError(what); };
  if (o.out_dir.empty()) return bad("an output folder is required (--out)");
  if (o.total_tokens <= 0) return bad("--tokens must be positive");
  if (o.batch_size <= 0) return bad("--batch-size must be positive");
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr) {
    return bad("--lr must be positive and --min-lr between 0 and --lr");
  }
  if (o.config.n_positions != corpus.options().context_size) {
    return bad(absl::StrCat("the model's context (n_positions ", o.config.n_positions,
                            ") differs from the corpus's context size ",
                            corpus.options().context_size));
  }
  if (o.config.vocab_size < corpus.options().vocab_size) {
    return bad(absl::StrCat("the model's vocabulary (", o.config.vocab_size,
                            ") is smaller than the corpus's (", corpus.options().vocab_size, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

double MeanLoss(const Gpt2TrainingModel& model, const at::Tensor& contexts, int64_t batch_size) {
  at::NoGradGuard no_grad;
  double sum = 0;
  const int64_t n = contexts.size(0);
  for (int64_t i = 0; i < n; i += batch_size) {
    const int64_t count = std::min(batch_size, n - i);
    sum += model.LossWithoutGradients(contexts.narrow(0, i, count)) * static_cast<double>(count);
  }
  return sum / static_cast<double>(n);
}

absl::StatusOr<Gpt2TrainingResult> TrainGpt2(const TrainingCorpus& corpus,
                                             const Gpt2TrainingOptions& o) {
  SAE_RETURN_IF_ERROR(CheckOptions(corpus, o));
  const int64_t total_steps = StepsFor(o);
  const int64_t warmup =
      o.warmup_steps >= 0 ? o.warmup_steps : std::min<int64_t>(100, total_steps / 10);
  const LearningRateSchedule schedule{o.lr, o.min_lr, warmup, total_steps};
  const nlohmann::json identity = RunIdentity(o, corpus, total_steps, warmup);
  const std::string checkpoint_dir = o.out_dir + "/checkpoint";
  const int64_t T = o.config.n_positions;

  std::unique_ptr<Gpt2TrainingModel> model;
  std::unique_ptr<AdamW> optimizer;
  const bool has_checkpoint = std::filesystem::exists(checkpoint_dir + "/state.json");
  if (o.resume) {
    if (!has_checkpoint) {
      return absl::FailedPreconditionError(absl::StrCat("nothing to resume: ", checkpoint_dir,
                                                        "/state.json does not exist (run "
                                                        "without --resume)"));
    }
    SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(checkpoint_dir + "/state.json"));
    nlohmann::json state = nlohmann::json::parse(text, nullptr, false);
    if (state.is_discarded() || !state.contains("run") || !state.contains("step")) {
      return absl::InvalidArgumentError(absl::StrCat(checkpoint_dir, "/state.json is malformed"));
    }
    for (auto& [key, value] : identity.items()) {
      if (!state["run"].contains(key) || state["run"][key] != value) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the checkpoint in ", checkpoint_dir, " was made with ", key, " = ",
            state["run"].value(key, nlohmann::json()).dump(), ", this run has ", value.dump(),
            "; resume with the same options and dataset"));
      }
    }
    SAE_ASSIGN_OR_RETURN(Gpt2Weights weights, LoadGpt2Weights(checkpoint_dir));
    model = std::make_unique<Gpt2TrainingModel>(weights);
    optimizer = std::make_unique<AdamW>(model->Parameters(), o.adamw);
    SAE_ASSIGN_OR_RETURN(auto moments, io::LoadTensors(checkpoint_dir + "/optimizer.safetensors"));
    SAE_RETURN_IF_ERROR(optimizer->Restore(moments, state["step"].get<int64_t>()));
  } else {
    if (has_checkpoint) {
      return absl::FailedPreconditionError(
          absl::StrCat(checkpoint_dir, " holds a checkpoint: pass --resume to continue it, or "
                                       "choose another --out"));
    }
    model = std::make_unique<Gpt2TrainingModel>(RandomGpt2Weights(o.config, o.seed));
    optimizer = std::make_unique<AdamW>(model->Parameters(), o.adamw);
  }

  Gpt2TrainingResult result;
  result.total_steps = total_steps;
  result.train_unigram_entropy = corpus.train_unigram_entropy();
  result.held_out_unigram_entropy = corpus.held_out_unigram_entropy();
  result.parameters = model->weights().ParameterCount();
  result.checkpoint_dir = checkpoint_dir;
  const at::Tensor eval_set =
      corpus.held_out().narrow(0, 0, std::min(o.eval_contexts, corpus.held_out().size(0)));
  const int64_t first_step = optimizer->step();
  double step_seconds = 0;
  try {
    for (int64_t step = first_step; step < total_steps; ++step) {
      const auto start = std::chrono::steady_clock::now();
      at::Tensor batch = corpus.Contexts(step * o.batch_size, o.batch_size, o.seed);
      Gpt2StepReport report;
      report.loss = model->LossAndBackward(batch);
      report.learning_rate = schedule.At(step);
      report.grad_norm = optimizer->Step(report.learning_rate);
      step_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      report.step = step + 1;
      report.total_steps = total_steps;
      report.tokens = report.step * o.batch_size * T;
      report.tokens_per_second =
          static_cast<double>((report.step - first_step) * o.batch_size * T) / step_seconds;
      if (!std::isfinite(report.loss)) {
        return absl::InternalError(absl::StrCat("the training loss is ", report.loss, " at step ",
                                                report.step, "; try a smaller --lr"));
      }
      if (o.eval_every > 0 && report.step % o.eval_every == 0 && report.step < total_steps) {
        report.held_out_loss = MeanLoss(*model, eval_set, o.batch_size);
      }
      result.steps = report.step;
      result.last_loss = report.loss;
      const bool interrupted = o.interrupt != nullptr && o.interrupt->load();
      if (interrupted || report.step == total_steps ||
          (o.checkpoint_every > 0 && report.step % o.checkpoint_every == 0)) {
        SAE_RETURN_IF_ERROR(WriteCheckpoint(*model, *optimizer, identity,
                                            report.step * o.batch_size, checkpoint_dir));
      }
      if (o.on_step) o.on_step(report);
      if (interrupted && report.step < total_steps) {
        result.interrupted = true;
        break;
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("GPT-2 training failed: ", e.what_without_backtrace()));
  }
  result.steps = optimizer->step();
  result.tokens = result.steps * o.batch_size * T;
  result.seconds = step_seconds;
  result.tokens_per_second =
      step_seconds > 0
          ? static_cast<double>((result.steps - first_step) * o.batch_size * T) / step_seconds
          : 0;
  if (result.interrupted) return result;

  result.held_out_loss = MeanLoss(*model, corpus.held_out(), o.batch_size);
  SAE_RETURN_IF_ERROR(SaveGpt2(Snapshot(*model), o.out_dir));
  nlohmann::json summary = {
      {"run", identity},
      {"steps", result.steps},
      {"tokens", result.tokens},
      {"context_size", T},
      {"parameters", result.parameters},
      {"held_out_fraction", corpus.options().held_out_fraction},
      {"documents", corpus.documents()},
      {"held_out_documents", corpus.held_out_documents()},
      {"train_contexts", corpus.train().size(0)},
      {"held_out_contexts", corpus.held_out().size(0)},
      {"last_train_loss", result.last_loss},
      {"held_out_loss", result.held_out_loss},
      {"train_unigram_entropy", result.train_unigram_entropy},
      {"held_out_unigram_entropy", result.held_out_unigram_entropy},
      {"tokens_per_second_last_session", result.tokens_per_second},
  };
  SAE_RETURN_IF_ERROR(WriteFileAtomically(o.out_dir + "/training.json", summary.dump(2) + "\n"));
  return result;
}

}  // namespace sae::model
