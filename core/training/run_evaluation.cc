#include "core/training/run_evaluation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/eval/evaluation.h"
#include "core/eval/sae_for_eval.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::training {

absl::StatusOr<std::unique_ptr<RunEvaluator>> RunEvaluator::Create(
    const config::RunConfig& config, const RunAssets& assets) {
  if (config.n_eval_batches <= 0) return nullptr;
  if (assets.model == nullptr || assets.dataset == nullptr) {
    spdlog::warn(
        "{}: no evaluations: a run from cached activations has no model forward to evaluate "
        "with (run `saectl eval` on the exported SAE instead)",
        config::KeyLocation(config, "n_eval_batches"));
    return nullptr;
  }
  std::unique_ptr<RunEvaluator> evaluator(new RunEvaluator());
  evaluator->model_ = assets.model.get();
  evaluator->hook_name_ = config.hook_point;
  evaluator->hook_head_index_ = static_cast<int>(config.hook_point_head_index.value_or(-1));
  evaluator->batch_prompts_ = config.eval_batch_size_prompts.value_or(config.store_batch_size);
  evaluator->every_steps_ =
      config.eval_every_n_wandb_logs * std::max<int64_t>(1, config.wandb_log_frequency);
  const int64_t count = config.n_eval_batches * evaluator->batch_prompts_;

  std::shared_ptr<const data::Dataset> dataset = assets.dataset;
  uint32_t shard = data::Dataset::kHeldOutShard;
  const char* key = "eval_held_out_fraction";
  if (config.eval_dataset_path) {
    data::DatasetOptions options = dataset->options();
    options.dataset_path = *config.eval_dataset_path;
    options.is_dataset_tokenized.reset();
    options.held_out_fraction = 0;
    absl::StatusOr<std::shared_ptr<const data::Dataset>> opened =
        data::Dataset::Open(options, assets.tokenizer.get());
    if (!opened.ok()) {
      return config::ConfigKeyError(config, "eval_dataset_path", opened.status().message());
    }
    dataset = *std::move(opened);
    shard = 0;
    key = "eval_dataset_path";
  }
  absl::StatusOr<at::Tensor> contexts = eval::ReadFirstContexts(dataset, count, shard);
  // With n_eval_batches and eval_batch_size_prompts left at their defaults, a small dataset's
  // held-out part gets as many whole batches as it holds (said in the log) rather than an error.
  const bool defaults = !config.source.Given("n_eval_batches") &&
                        !config.source.Given("eval_batch_size_prompts");
  for (int64_t batches = config.n_eval_batches - 1;
       !contexts.ok() && absl::IsOutOfRange(contexts.status()) && defaults && batches >= 1;
       --batches) {
    contexts = eval::ReadFirstContexts(dataset, batches * evaluator->batch_prompts_, shard);
    if (contexts.ok()) {
      spdlog::warn(
          "{}: the evaluation data holds {} batches of {} contexts, not the default {}; "
          "evaluating on {} (raise eval_held_out_fraction or set eval_dataset_path for more)",
          config::KeyLocation(config, "n_eval_batches"), batches, evaluator->batch_prompts_,
          config.n_eval_batches, batches);
    }
  }
  if (!contexts.ok()) {
    return config::ConfigKeyError(
        config, key,
        absl::StrCat(contexts.status().message(), ": evaluations need n_eval_batches (",
                     config.n_eval_batches, ") * eval_batch_size_prompts (",
                     evaluator->batch_prompts_, ") contexts; ",
                     config.eval_dataset_path ? "name a larger dataset"
                                              : "raise eval_held_out_fraction",
                     ", or lower n_eval_batches or eval_batch_size_prompts"));
  }
  evaluator->contexts_ = *std::move(contexts);
  return evaluator;
}

absl::StatusOr<eval::EvalResults> RunEvaluator::Evaluate(const sparse::SaeTrainer& trainer) const {
  return Evaluate(trainer.InferenceOptions(), trainer.InferenceParameters());
}

absl::StatusOr<eval::EvalResults> RunEvaluator::Evaluate(const sparse::SaeOptions& options,
                                                         const sparse::SaeParameters& params) const {
  eval::SaeForEval sae;
  sae.options = options;
  sae.params = params;
  sae.hook_name = hook_name_;
  sae.hook_head_index = hook_head_index_;
  eval::TensorContextSource contexts(contexts_);
  eval::EvalOptions eval_options;
  eval_options.n_eval_batches = contexts_.size(0) / batch_prompts_;
  eval_options.eval_batch_size_prompts = batch_prompts_;
  return eval::EvaluateSae(*model_, sae, contexts, eval_options);
}

std::string EvalSummaryLine(const eval::EvalResults& r) {
  return absl::StrFormat(
      "ce_loss_score %.4g (CE %.4g clean, %.4g SAE, %.4g ablated), kl_div_score %.4g, "
      "explained_variance %.4g, l0 %.4g, dead %d",
      r.ce_loss_score, r.ce_loss_without_sae, r.ce_loss_with_sae, r.ce_loss_with_ablation,
      r.kl_div_score, r.explained_variance, r.l0, r.dead_features);
}

}  // namespace sae::training
