#include "services/trainer/progress_sender.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/training/run_evaluation.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {

v1::TrainingMetrics ToProto(const sparse::StepMetrics& m, double tokens_per_second) {
  v1::TrainingMetrics out;
  out.set_step(m.step);
  out.set_tokens(m.tokens);
  out.set_learning_rate(m.learning_rate);
  out.set_l1_coefficient(m.l1_coefficient);
  out.set_overall_loss(m.overall_loss);
  out.set_mse_loss(m.mse_loss);
  out.set_l1_loss(m.l1_loss);
  out.set_ghost_grad_loss(m.ghost_grad_loss);
  out.set_aux_loss(m.aux_loss);
  out.set_l0(m.l0);
  out.set_explained_variance(m.explained_variance);
  out.set_explained_variance_std(m.explained_variance_std);
  out.set_l2_norm(m.l2_norm);
  out.set_l2_ratio(m.l2_ratio);
  out.set_dead_features(m.dead_features);
  out.set_mean_passes_since_fired(m.mean_passes_since_fired);
  if (m.sparsity) {
    out.set_mean_log10_feature_sparsity(m.sparsity->mean_log10_feature_sparsity);
    out.set_features_below_1e5(m.sparsity->below_1e5);
    out.set_features_below_1e6(m.sparsity->below_1e6);
    for (int64_t count : m.sparsity->log10_density_histogram) {
      out.add_log10_density_histogram(count);
    }
  }
  out.set_tokens_per_second(tokens_per_second);
  return out;
}


ProgressSender::ProgressSender(client::WorkerAgent* agent)
    : agent_(agent), thread_([this] { Loop(); }) {}

ProgressSender::~ProgressSender() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void ProgressSender::Post(v1::ReportProgressRequest request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // A window's sparsity summary comes in one report only: a newer report that replaces it
    // before it was sent carries it on.
    const v1::TrainingMetrics* replaced = pending_ ? &pending_->metrics() : nullptr;
    v1::TrainingMetrics* newer = request.mutable_metrics();
    if (replaced != nullptr && replaced->has_mean_log10_feature_sparsity() &&
        !newer->has_mean_log10_feature_sparsity()) {
      newer->set_mean_log10_feature_sparsity(replaced->mean_log10_feature_sparsity());
      newer->set_features_below_1e5(replaced->features_below_1e5());
      newer->set_features_below_1e6(replaced->features_below_1e6());
      *newer->mutable_log10_density_histogram() = replaced->log10_density_histogram();
    }
    pending_ = std::move(request);
  }
  changed_.notify_all();
}

void ProgressSender::Flush() {
  std::lock_guard<std::mutex> sending(send_mutex_);
  std::optional<v1::ReportProgressRequest> request = Take();
  if (request) Send(*request);
}

std::optional<v1::ReportProgressRequest> ProgressSender::Take() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::optional<v1::ReportProgressRequest> request = std::move(pending_);
  pending_.reset();
  return request;
}

void ProgressSender::Send(const v1::ReportProgressRequest& request) {
  absl::StatusOr<v1::ReportProgressResponse> answer = agent_->ReportProgress(request);
  if (!answer.ok()) {
    spdlog::warn("progress report of step {} not delivered: {}", request.step(),
                 std::string(answer.status().message()));
  }
}

void ProgressSender::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return done_ || pending_.has_value(); });
      if (done_) return;
    }
    std::lock_guard<std::mutex> sending(send_mutex_);
    std::optional<v1::ReportProgressRequest> request = Take();
    if (request) Send(*request);
  }
}

void ReportSkippedTokens(client::WorkerAgent& agent, const v1::Assignment& assignment,
                         int64_t checkpoint_step, int64_t checkpoint_tokens,
                         int64_t group_furthest) {
  // The furthest the previous group got: what a rank of this group trained to, or what rank 0
  // last reported to the controller.
  int64_t furthest = group_furthest;
  absl::StatusOr<v1::Run> run = agent.client().GetRun(assignment.run_id());
  if (run.ok()) furthest = std::max(furthest, run->tokens());
  const int64_t skipped = std::max<int64_t>(0, furthest - checkpoint_tokens);
  v1::ReportProgressRequest report;
  report.set_run_id(assignment.run_id());
  report.set_generation(assignment.generation());
  report.set_step(checkpoint_step);
  report.set_tokens(checkpoint_tokens);
  report.set_tokens_skipped(skipped);
  absl::StatusOr<v1::ReportProgressResponse> answer = agent.ReportProgress(report);
  if (!answer.ok()) {
    spdlog::warn("the {} skipped tokens were not reported: {}", skipped,
                 std::string(answer.status().message()));
    return;
  }
  spdlog::info("rolled back to {} tokens from {}: {} tokens skipped", checkpoint_tokens, furthest,
               skipped);
}

void ReportEvaluation(client::WorkerAgent& agent, const v1::Assignment& assignment,
                      const RemoteEvaluation& outcome) {
  v1::ReportProgressRequest report;
  report.set_run_id(assignment.run_id());
  report.set_generation(assignment.generation());
  v1::EvalReport& eval = *report.mutable_eval();
  eval.set_step(outcome.step);
  eval.set_tokens(outcome.tokens);
  eval.set_server(outcome.server);
  eval.set_seconds(outcome.seconds);
  eval.set_final(outcome.final);
  eval.set_sae(outcome.sae);
  if (outcome.results.ok()) {
    eval.set_results_json(outcome.results_json);
    eval.set_ce_loss_score(outcome.results->ce_loss_score);
    eval.set_kl_div_score(outcome.results->kl_div_score);
    eval.set_explained_variance(outcome.results->explained_variance);
    eval.set_l0(outcome.results->l0);
    spdlog::info("{}evaluation at step {} ({}, {:.1f} s): {}",
                 outcome.sae.empty() ? "" : absl::StrCat("[", outcome.sae, "] "), outcome.step,
                 outcome.server, outcome.seconds, training::EvalSummaryLine(*outcome.results));
  } else {
    eval.set_error(std::string(outcome.results.status().message()));
    spdlog::warn("{}; training goes on", eval.error());
  }
  absl::StatusOr<v1::ReportProgressResponse> answer = agent.ReportProgress(report);
  if (!answer.ok()) {
    spdlog::warn("the evaluation at step {} was not reported: {}", outcome.step,
                 std::string(answer.status().message()));
  }
}

StepReports::StepReports(ProgressSender* sender, const v1::Assignment& assignment,
                         int64_t log_every, size_t saes)
    : sender_(sender),
      run_id_(assignment.run_id()),
      generation_(assignment.generation()),
      log_every_(std::max<int64_t>(1, log_every)),
      saes_(saes) {}

v1::ReportProgressRequest StepReports::Report(const sparse::StepMetrics& m) const {
  v1::ReportProgressRequest report;
  report.set_run_id(run_id_);
  report.set_generation(generation_);
  report.set_step(m.step);
  report.set_tokens(m.tokens);
  return report;
}

void StepReports::OnStep(const sparse::StepMetrics& m, double tokens_per_second,
                         int64_t total_steps) {
  const bool due = m.step % log_every_ == 0 || m.step == total_steps || m.sparsity.has_value();
  if (sender_ == nullptr || !due) return;
  v1::ReportProgressRequest report = Report(m);
  *report.mutable_metrics() = ToProto(m, tokens_per_second);
  sender_->Post(std::move(report));
}

bool StepReports::OnSaeStep(size_t index, const std::string& name,
                            const sparse::StepMetrics& m, double tokens_per_second,
                            int64_t total_steps) {
  v1::SaeProgress& progress = saes_.at(index);
  progress.set_name(name);
  progress.set_step(m.step);
  *progress.mutable_metrics() = ToProto(m, tokens_per_second);
  if (index + 1 != saes_.size()) return false;
  bool sparsity = false;
  for (const v1::SaeProgress& sae : saes_) {
    sparsity = sparsity || sae.metrics().has_mean_log10_feature_sparsity();
  }
  const bool due = m.step % log_every_ == 0 || m.step == total_steps || sparsity;
  if (sender_ == nullptr || !due) return true;
  v1::ReportProgressRequest report = Report(m);
  *report.mutable_metrics() = saes_.front().metrics();
  for (const v1::SaeProgress& sae : saes_) *report.add_saes() = sae;
  sender_->Post(std::move(report));
  return true;
}

}  // namespace sae::trainer
