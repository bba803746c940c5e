// What the controller exports on /metrics (docs/operations.md lists the series).
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_METRICS_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/metrics/registry.h"
#include "sae/v1/controller.pb.h"

namespace sae::controller {

// Thread-safe (the families are).
class ControllerMetrics {
 public:
  // Registers the families in `registry`, which must outlive this object.
  static absl::StatusOr<std::unique_ptr<ControllerMetrics>> Create(metrics::Registry* registry);

  // Runs by state and workers by role and state (idle or assigned), replacing the last counts.
  void SetRunCounts(const std::map<v1::RunState, int>& runs);
  void SetWorkerCounts(const std::map<std::pair<v1::WorkerRole, bool>, int>& workers_by_assigned);

  // The run's training metrics and progress as last reported.
  void RecordProgress(const v1::Run& run);
  void RecordRestart(const std::string& run_id);
  // A committed checkpoint of `bytes`, uploaded in `seconds`; `stored_bytes` of checkpoints kept;
  // committed at `commit_unix_seconds` (the checkpoint age is now minus that).
  void RecordCheckpoint(const std::string& run_id, int64_t bytes, double seconds,
                        int64_t stored_bytes, double commit_unix_seconds);
  // `bytes` of an upload's chunk stored (staged), before any commit.
  void RecordReceivedChunk(int64_t bytes);
  // Stops exporting the run's training series and restarts (the run ended).
  void ForgetTraining(const std::string& run_id);
  // Stops exporting every series of the run (it was deleted).
  void ForgetRun(const std::string& run_id);

 private:
  ControllerMetrics() = default;

  metrics::Family<metrics::Gauge>* runs_ = nullptr;
  metrics::Family<metrics::Gauge>* workers_ = nullptr;
  metrics::Family<metrics::Counter>* restarts_ = nullptr;
  metrics::Family<metrics::Counter>* checkpoint_bytes_ = nullptr;
  metrics::Family<metrics::Counter>* checkpoints_ = nullptr;
  metrics::Family<metrics::Gauge>* stored_bytes_ = nullptr;
  metrics::Family<metrics::Gauge>* checkpoint_time_ = nullptr;
  metrics::Family<metrics::Histogram>* upload_seconds_ = nullptr;
  metrics::Family<metrics::Counter>* received_bytes_ = nullptr;
  // One gauge family per training metric, labelled run_id.
  std::vector<std::pair<std::string, metrics::Family<metrics::Gauge>*>> training_;
  // A run of many SAEs: per SAE (labels run_id, sae), sae_controller_sae_<name>.
  std::vector<std::pair<std::string, metrics::Family<metrics::Gauge>*>> per_sae_;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_METRICS_H_
