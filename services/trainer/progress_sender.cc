#include "services/trainer/progress_sender.h"

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

}  // namespace sae::trainer
