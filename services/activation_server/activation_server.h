// An activation server, assembled: the run's model, tokenizer and shard (core/training
// LoadRunAssets), the feed generating into the mixing buffer, the consumer sessions, and the
// gRPC server with ActivationService and grpc.health.v1.
//
// sae-activation-server's main builds one from flags; a worker started with --controller
// builds one from its assignment (run config, shard, cursor). Both call Start and, to stop,
// Shutdown.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVER_H_
#define SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/config/run_config.h"
#include "core/data/shard_cursor.h"
#include "core/metrics/registry.h"
#include "core/training/run_assets.h"
#include "services/activation_server/activation_feed.h"
#include "services/activation_server/activation_service.h"
#include "services/activation_server/consumer_sessions.h"
#include "services/activation_server/server_metrics.h"
#include "services/common/rpc.h"

namespace sae::activation_server {

struct ActivationServerOptions {
  // The run, as parsed from run.yaml (Start resolves it against the model).
  config::RunConfig config;
  // The run's id; consumers must name the same. "": wire::DefaultRunId(config).
  std::string run_id;
  // The shard this server generates: shard_index of shard_count.
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  // host:port to listen on; port 0 lets the kernel choose (port() tells which).
  std::string listen = "127.0.0.1:0";
  // Where generation starts. With cursor_file as well, the further of the two.
  std::optional<data::ShardCursor> resume_cursor;
  // When not empty: the generation frontier is kept in this file, and a server started with
  // an existing file resumes from it (see ActivationFeedOptions::cursor_file).
  std::string cursor_file;
  // The trainer generation served at first (see SetTrainerGeneration). 0: what trainers started by
  // hand send.
  int64_t trainer_generation = 0;
  // Under a controller: consumers of another run are told to retry (ServedRun).
  bool other_runs_are_early = false;
  // The cap on the batches of one StreamActivations call, which is also the most a consumer's
  // unacknowledged window holds.
  int max_batches_per_call = 8;
  // Bearer token and TLS of the port.
  rpc::ServerSecurity security;
  // Where the server's series go; null: none.
  metrics::Registry* metrics = nullptr;
};

// Thread-safe.
class ActivationServer {
 public:
  // Loads the run, starts generating and starts serving; returns once the port is bound.
  // InvalidArgument for a bad config, shard or cursor (naming the key or flag); NotFound and
  // the like for missing files; Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<ActivationServer>> Start(ActivationServerOptions options);

  // Shutdown(absl::ZeroDuration()).
  ~ActivationServer();
  ActivationServer(const ActivationServer&) = delete;
  ActivationServer& operator=(const ActivationServer&) = delete;

  // The port the server listens on.
  int port() const { return port_; }
  const std::string& run_id() const { return run_.run_id; }
  const config::RunConfig& config() const { return config_; }
  uint64_t incarnation() const { return sessions_->incarnation(); }

  // Where generation stands: for progress reports and for a restart to resume from.
  data::ShardCursor frontier() const { return feed_->frontier(); }
  int64_t tokens_generated() const { return feed_->tokens_generated(); }
  int64_t activations_served() const { return feed_->rows_served(); }
  // ConsumerSessions::unacknowledged_bytes: what the server holds for its consumers.
  int64_t unacknowledged_bytes() const { return sessions_->unacknowledged_bytes(); }
  // ActivationServiceImpl::OldestWriteWait: how long a consumer has not been reading.
  absl::Duration oldest_write_wait() const { return service_->OldestWriteWait(); }
  // EvaluateSae calls answered.
  int64_t evaluations() const { return evaluations_->evaluations(); }
  // OK while generation is healthy; the error that stopped it otherwise.
  absl::Status generation_status() const { return feed_->generation_status(); }

  // The trainer generation whose consumers are served (StreamRequest.generation), or
  // ActivationServiceImpl::kBetweenGenerations to serve none while the run waits for its next
  // generation; the model, the mixing buffer and the frontier stay. Streams of another
  // generation end at their next batch boundary.
  void SetTrainerGeneration(int64_t generation) { service_->SetTrainerGeneration(generation); }
  int64_t trainer_generation() const { return service_->trainer_generation(); }

  // Graceful stop: the health service says NOT_SERVING, new calls are refused, streams end at
  // their next batch boundary (a write in progress finishes), and after `grace` whatever is
  // left is cancelled; then generation stops. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  ActivationServer() = default;

  config::RunConfig config_;
  training::RunAssets assets_;
  ServedRun run_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<ActivationFeed> feed_;
  std::unique_ptr<ConsumerSessions> sessions_;
  std::unique_ptr<SaeEvaluations> evaluations_;
  std::unique_ptr<ActivationServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex shutdown_mutex_;
  bool shut_down_ = false;
  // Cleared at shutdown, so that the registry's collector (which may outlive the server) stops
  // reading the feed.
  std::shared_ptr<std::atomic<ActivationFeed*>> collected_feed_;
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_SERVER_H_
