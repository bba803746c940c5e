// Evaluations of a distributed run's SAE where the model is: trainer rank 0 sends its current
// parameters to an activation server (ActivationService.EvaluateSae, in 1 MiB pieces), which
// evaluates them on the run's held-out contexts and answers with the results. Periodic
// evaluations run on a thread of their own while training goes on (one at a time: a due
// evaluation is skipped while the previous one still runs); the final one is waited for, so
// that its eval_results.json goes into the final SAE's folder. Design and cost:
// docs/architecture.md.
#ifndef SAE_SERVICES_TRAINER_REMOTE_EVALUATION_H_
#define SAE_SERVICES_TRAINER_REMOTE_EVALUATION_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/eval/eval_results.h"
#include "core/sae/sparse_autoencoder.h"
#include "services/common/rpc.h"

namespace sae::trainer {

struct RemoteEvaluationOptions {
  std::vector<std::string> servers;  // host:port, in shard order
  rpc::ClientSecurity security;
  std::string run_id;
  std::string config_digest;  // wire::RunConfigDigest of the resolved config
  // Deadline of one evaluation, sending included.
  absl::Duration timeout = absl::Minutes(30);
};

// What one evaluation came to.
struct RemoteEvaluation {
  int64_t step = 0;
  int64_t tokens = 0;
  bool final = false;
  std::string sae;  // a run of many SAEs: the SAE evaluated; "" for a run of one
  absl::StatusOr<eval::EvalResults> results = absl::UnknownError("not evaluated");
  std::string results_json;  // as the server sent it (when results is OK)
  std::string server;        // host:port
  double seconds = 0;        // request to answer
};

class RemoteEvaluator {
 public:
  using Report = std::function<void(const RemoteEvaluation&)>;
  // `report` is called with every outcome, from the evaluation's thread.
  RemoteEvaluator(RemoteEvaluationOptions options, Report report);
  // Cancels an evaluation in flight and waits for its thread.
  ~RemoteEvaluator();
  RemoteEvaluator(const RemoteEvaluator&) = delete;
  RemoteEvaluator& operator=(const RemoteEvaluator&) = delete;

  // Starts evaluating `params` (copied now) on the next server in turn, and returns. False
  // (logged) when the previous evaluation still runs: this one is skipped.
  // `sae`: the SAE's name in a run of many (EvaluateSaeRequest.sae), "" for a run of one.
  bool Start(int64_t step, int64_t tokens, const sparse::SaeParameters& params,
             const std::string& sae = "");

  // Evaluates `params` now, after any evaluation in flight, trying the servers in turn until
  // one answers; every failure is reported too. The last error when none answered.
  RemoteEvaluation EvaluateNow(int64_t step, int64_t tokens, const sparse::SaeParameters& params,
                               bool final, const std::string& sae = "");

  int64_t skipped() const { return skipped_.load(); }

 private:
  RemoteEvaluation EvaluateOn(size_t server, int64_t step, int64_t tokens,
                              const sparse::SaeParameters& params, const std::string& sae);
  void Join();

  const RemoteEvaluationOptions options_;
  const Report report_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> closing_{false};
  std::atomic<int64_t> skipped_{0};
  size_t next_server_ = 0;
  std::mutex context_mutex_;
  grpc::ClientContext* context_ = nullptr;  // the call in flight, for cancellation
};

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_REMOTE_EVALUATION_H_
