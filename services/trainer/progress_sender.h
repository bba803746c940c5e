// Rank 0's reports to the controller: progress and the metrics it carries, skipped tokens,
// evaluations.
#ifndef SAE_SERVICES_TRAINER_PROGRESS_SENDER_H_
#define SAE_SERVICES_TRAINER_PROGRESS_SENDER_H_

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/sae/sae_trainer.h"
#include "sae/v1/controller.pb.h"
#include "services/common/worker_agent.h"
#include "services/trainer/remote_evaluation.h"

namespace sae::trainer {

// A step's metrics as the controller stores them.
v1::TrainingMetrics ToProto(const sparse::StepMetrics& m, double tokens_per_second);

// Sends rank 0's newest progress report on a thread of its own, so that a slow or absent
// controller never holds up a step; a report not sent yet is replaced by a newer one. A report
// that cannot be delivered is logged and dropped (the next one carries newer figures).
class ProgressSender {
 public:
  // `agent` must outlive the sender.
  explicit ProgressSender(client::WorkerAgent* agent);
  // Stops the thread; a report still pending is dropped (Flush first to keep it).
  ~ProgressSender();
  ProgressSender(const ProgressSender&) = delete;
  ProgressSender& operator=(const ProgressSender&) = delete;

  // Queues `request`, replacing a report not sent yet (whose sparsity summary, if `request` has
  // none, `request` takes over).
  void Post(v1::ReportProgressRequest request);

  // Sends the pending report, if any, now (after one being sent by the thread).
  void Flush();

 private:
  std::optional<v1::ReportProgressRequest> Take();
  void Send(const v1::ReportProgressRequest& request);
  void Loop();

  client::WorkerAgent* const agent_;
  std::mutex send_mutex_;  // One report on the wire at a time, in order.
  std::mutex mutex_;       // Guards pending_ and done_.
  std::condition_variable changed_;
  std::optional<v1::ReportProgressRequest> pending_;
  bool done_ = false;
  std::thread thread_;
};

// The progress reports of one attempt's steps, posted to `sender` (null: not rank 0, nothing is
// posted): every `log_every` steps, the last step, and a step that ends a feature-sampling
// window (its sparsity summary is sent once). A run of many SAEs reports every SAE's metrics of
// a step at once, when the last SAE of the step stepped; the report's `metrics` are the first
// SAE's.
class StepReports {
 public:
  StepReports(ProgressSender* sender, const v1::Assignment& assignment, int64_t log_every,
              size_t saes);
  // The step of a run of one SAE.
  void OnStep(const sparse::StepMetrics& m, double tokens_per_second, int64_t total_steps);
  // SAE `index` of a run of many stepped; true when it was the step's last SAE.
  bool OnSaeStep(size_t index, const std::string& name, const sparse::StepMetrics& m,
                 double tokens_per_second, int64_t total_steps);

 private:
  v1::ReportProgressRequest Report(const sparse::StepMetrics& m) const;

  ProgressSender* const sender_;
  const std::string run_id_;
  const uint64_t generation_;
  const int64_t log_every_;
  std::vector<v1::SaeProgress> saes_;
};

// Trainer rank 0, once after a restart's group formed: reports the tokens the rollback to the
// checkpoint skipped (the furthest any rank of the previous group, or the controller, saw,
// minus the checkpoint's tokens). Logged when it cannot be delivered.
void ReportSkippedTokens(client::WorkerAgent& agent, const v1::Assignment& assignment,
                         int64_t checkpoint_step, int64_t checkpoint_tokens,
                         int64_t group_furthest);

// Trainer rank 0: an evaluation's outcome (remote_evaluation.h), as an EvalReport; logged
// too. Logged when it cannot be delivered (the run trains on).
void ReportEvaluation(client::WorkerAgent& agent, const v1::Assignment& assignment,
                      const RemoteEvaluation& outcome);

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_PROGRESS_SENDER_H_
