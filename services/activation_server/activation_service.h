// The gRPC face of an activation server: ActivationService's handlers. They check the request
// and hand the work to the feed (batches out of the mixing buffer) and the consumer sessions
// (sequences, acknowledgements, resends).
#ifndef SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVICE_H_
#define SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/config/run_config.h"
#include "sae/v1/activations.grpc.pb.h"
#include "services/activation_server/activation_feed.h"
#include "services/activation_server/consumer_sessions.h"
#include "services/activation_server/sae_evaluations.h"
#include "services/activation_server/server_metrics.h"
#include "services/common/rpc.h"

namespace sae::activation_server {

// What a consumer's request must match.
struct ServedRun {
  std::string run_id;
  std::string config_digest;  // wire::RunConfigDigest of the resolved config
  int64_t train_batch_size = 0;
  int max_batches_per_call = 8;
  // Under a controller, a consumer of another run is early rather than wrong: this server is
  // about to be reassigned to that run. It is then answered UNAVAILABLE (retry) instead of
  // FAILED_PRECONDITION.
  bool other_runs_are_early = false;
};

class ActivationServiceImpl final : public v1::ActivationService::Service {
 public:
  // Every pointer must outlive the service; `metrics` may be null.
  ActivationServiceImpl(ServedRun run, ActivationFeed* feed, ConsumerSessions* sessions,
                        ServerMetrics* metrics, SaeEvaluations* evaluations,
                        std::string auth_token);

  grpc::Status StreamActivations(grpc::ServerContext* context, const v1::StreamRequest* request,
                                 grpc::ServerWriter<v1::ActivationBatch>* writer) override;
  grpc::Status GetServerStatus(grpc::ServerContext* context,
                               const v1::GetServerStatusRequest* request,
                               v1::ServerStatus* status) override;
  grpc::Status EvaluateSae(grpc::ServerContext* context,
                           grpc::ServerReader<v1::EvaluateSaeRequest>* reader,
                           v1::EvaluateSaeResponse* response) override;

  // From now on streams end at their next batch boundary with UNAVAILABLE (writes in progress
  // finish first) and new calls are refused.
  void BeginShutdown() { shutting_down_ = true; }

  // The trainer generation served (StreamRequest.generation); kBetweenGenerations: none, between
  // two generations. Consumers of any other generation are refused (an older one with
  // FAILED_PRECONDITION, a newer one with UNAVAILABLE), and streams of another generation end
  // at their next batch boundary. 0 at construction, which is what processes started by hand
  // send.
  void SetTrainerGeneration(int64_t generation) { trainer_generation_ = generation; }
  int64_t trainer_generation() const { return trainer_generation_; }
  static constexpr int64_t kBetweenGenerations = -1;

  // How long the oldest write still in progress has been waiting; zero when none is. A consumer
  // that stopped reading leaves its stream's write waiting once the HTTP/2 flow-control windows
  // are full (and the server holds no more than those windows for it).
  absl::Duration OldestWriteWait() const;

 private:
  // OK, or why `request` cannot be served (the status the call ends with).
  grpc::Status CheckRequest(const v1::StreamRequest& request) const;
  // OK while the request's generation is the one served.
  grpc::Status CheckTrainerGeneration(const v1::StreamRequest& request) const;
  // Skips generation ahead to the request's cursor of this server's shard, if it is further.
  grpc::Status ApplyResumeCursors(const v1::StreamRequest& request);
  // The next batch out of the feed, encoded (DeadlineExceeded when none is ready yet).
  absl::StatusOr<std::unique_ptr<v1::ActivationBatch>> NextBatch(const v1::StreamRequest& request,
                                                                 config::DType dtype);
  // Writes one batch, timing it and counting its bytes.
  bool Write(grpc::ServerWriter<v1::ActivationBatch>* writer, const v1::ActivationBatch& batch);

  const ServedRun run_;
  ActivationFeed* const feed_;
  ConsumerSessions* const sessions_;
  ServerMetrics* const metrics_;
  SaeEvaluations* const evaluations_;
  const rpc::BearerTokenCheck auth_;
  std::atomic<bool> shutting_down_{false};
  mutable absl::Mutex writes_mutex_;
  std::multiset<absl::Time> writes_started_ ABSL_GUARDED_BY(writes_mutex_);
  std::atomic<int64_t> trainer_generation_{0};
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVICE_H_
