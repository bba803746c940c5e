#include "core/training/training_metrics.h"

#include <limits>

#include "core/util/status.h"

namespace sae::training {

absl::StatusOr<std::unique_ptr<TrainingMetrics>> TrainingMetrics::Create(
    metrics::Registry& registry, const std::string& run_id, int rank, const std::string& sae) {
  std::unique_ptr<TrainingMetrics> m(new TrainingMetrics());
  const std::vector<std::string> labels = {"run_id", "rank", "sae"};
  const std::vector<std::string> values = {run_id, std::to_string(rank), sae};
  metrics::LabelledSeries series(registry, labels, values);
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_overall_loss", "losses/overall_loss: total training loss.", &m->overall_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_mse_loss", "losses/mse_loss: reconstruction loss.",
                                      &m->mse_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_l1_loss", "losses/l1_loss: mean over tokens of sum |f|, without the coefficient.",
      &m->l1_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_ghost_grad_loss", "losses/ghost_grad_loss.",
                                      &m->ghost_grad_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_aux_loss",
      "losses/auxiliary_reconstruction_loss: AuxK (topk, batchtopk, matryoshka_batchtopk) or the "
      "gate's reconstruction (gated).",
      &m->aux_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_l0_loss", "losses/l0_loss: jumprelu's sparsity loss, with its coefficient.",
      &m->l0_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_pre_act_loss",
                                      "losses/pre_act_loss: jumprelu's pre-activation loss.",
                                      &m->pre_act_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_inner_mse_loss",
      "Sum over matryoshka_widths but the last of losses/inner_mse_loss_{width}.",
      &m->inner_mse_loss_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_topk_threshold",
      "metrics/topk_threshold: batchtopk's running threshold (used at inference).",
      &m->topk_threshold_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_l0", "metrics/l0: mean number of active features per token.", &m->l0_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_explained_variance",
                                      "metrics/explained_variance: mean over tokens.",
                                      &m->explained_variance_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_explained_variance_std",
                                      "metrics/explained_variance_std.",
                                      &m->explained_variance_std_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_dead_features",
                                      "sparsity/dead_features: features in the step's dead mask.",
                                      &m->dead_features_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_mean_passes_since_fired",
                                      "sparsity/mean_passes_since_fired.",
                                      &m->mean_passes_since_fired_));
  SAE_RETURN_IF_ERROR(
      series.AddGauge("sae_train_mean_log10_feature_sparsity",
                      "metrics/mean_log10_feature_sparsity over the last feature-sampling window.",
                      &m->mean_log10_feature_sparsity_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_learning_rate", "details/current_learning_rate.",
                                      &m->learning_rate_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_l1_coefficient", "Current L1 coefficient (after warm-up).", &m->l1_coefficient_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_tokens_per_second",
                                      "This rank's training throughput over the last step (sum over ranks for the "
                                      "run's).",
                                      &m->tokens_per_second_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_l2_norm", "metrics/l2_norm: mean norm of the reconstruction.", &m->l2_norm_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_l2_ratio",
                                      "metrics/l2_ratio: mean ||x_hat|| / ||x||.", &m->l2_ratio_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_step", "Training steps completed.", &m->step_));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_train_latents", "Latents of the SAE, d_sae (dead fraction = sae_train_dead_features / this).",
      &m->d_sae_));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_train_total_steps",
                                      "Optimiser steps the run trains for.", &m->total_steps_));
  SAE_ASSIGN_OR_RETURN(
      auto* tokens,
      registry.AddCounter("sae_train_tokens_total",
                          "Tokens this rank trained on; the run's (details/n_training_tokens) is "
                          "the sum over ranks.",
                          labels));
  m->tokens_ = &tokens->Labels(values);
  SAE_ASSIGN_OR_RETURN(auto* steps, registry.AddCounter("sae_train_steps_total",
                                                        "Training steps completed.", labels));
  m->steps_ = &steps->Labels(values);
  SAE_ASSIGN_OR_RETURN(
      auto* step_seconds,
      registry.AddHistogram("sae_train_step_duration_seconds",
                            "Wall time of a training step, data wait excluded.", labels));
  m->step_seconds_ = &step_seconds->Labels(values);
  SAE_ASSIGN_OR_RETURN(auto* wait,
                       registry.AddHistogram("sae_train_wait_for_data_seconds",
                                             "Time a step waited for its batch.", labels));
  m->wait_seconds_ = &wait->Labels(values);
  SAE_ASSIGN_OR_RETURN(auto* allreduce,
                       registry.AddHistogram("sae_train_allreduce_duration_seconds",
                                             "Time of the step's gradient all-reduce.", labels));
  m->allreduce_seconds_ = &allreduce->Labels(values);
  // Unknown until the first feature-sampling window ends (0 would mean every feature fires on
  // every token).
  m->mean_log10_feature_sparsity_->Set(std::numeric_limits<double>::quiet_NaN());
  return m;
}

void TrainingMetrics::RecordStep(const sparse::StepMetrics& s, double step_seconds,
                                 int64_t rank_tokens) {
  overall_loss_->Set(s.overall_loss);
  mse_loss_->Set(s.mse_loss);
  l1_loss_->Set(s.l1_loss);
  ghost_grad_loss_->Set(s.ghost_grad_loss);
  aux_loss_->Set(s.aux_loss);
  l0_loss_->Set(s.l0_loss);
  pre_act_loss_->Set(s.pre_act_loss);
  inner_mse_loss_->Set(s.inner_mse_loss);
  topk_threshold_->Set(s.topk_threshold);
  l0_->Set(s.l0);
  explained_variance_->Set(s.explained_variance);
  explained_variance_std_->Set(s.explained_variance_std);
  dead_features_->Set(static_cast<double>(s.dead_features));
  mean_passes_since_fired_->Set(s.mean_passes_since_fired);
  if (s.sparsity) mean_log10_feature_sparsity_->Set(s.sparsity->mean_log10_feature_sparsity);
  learning_rate_->Set(s.learning_rate);
  l1_coefficient_->Set(s.l1_coefficient);
  l2_norm_->Set(s.l2_norm);
  l2_ratio_->Set(s.l2_ratio);
  step_->Set(static_cast<double>(s.step));
  if (step_seconds > 0) tokens_per_second_->Set(static_cast<double>(rank_tokens) / step_seconds);
  tokens_->Increment(static_cast<double>(rank_tokens));
  steps_->Increment();
  step_seconds_->Observe(step_seconds);
}

void TrainingMetrics::RecordRunSize(int64_t d_sae, int64_t total_steps) {
  d_sae_->Set(static_cast<double>(d_sae));
  total_steps_->Set(static_cast<double>(total_steps));
}

void TrainingMetrics::RecordWaitForData(double seconds) { wait_seconds_->Observe(seconds); }
void TrainingMetrics::RecordAllReduce(double seconds) { allreduce_seconds_->Observe(seconds); }

}  // namespace sae::training
