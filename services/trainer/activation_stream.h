// One trainer rank's stream from one activation server: a thread that pulls leases of batches
// (StreamActivations calls), decodes them into the rank's prefetch queue, and keeps where it
// stands with the server (the server's incarnation, the last sequence received, the furthest
// shard cursor seen), so that a broken stream resumes exactly where it broke.
//
// Failures: a call that fails is retried on the same channel after a backoff (100 ms doubling
// to 5 s by default) that ends early as soon as the channel connects again, acknowledging what
// arrived and resuming from the furthest cursor, so a restarted server neither repeats nor
// rewinds and is used the moment it listens. A server that stays unreachable
// longer than server_deadline is reported: an error log, sae_stream_server_up 0, and the
// prefetch queue fails with a message naming the server, which fails the run. Errors a retry
// cannot fix (another run's server, a bad request, a malformed batch) fail the queue at once.
#ifndef SAE_SERVICES_TRAINER_ACTIVATION_STREAM_H_
#define SAE_SERVICES_TRAINER_ACTIVATION_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/config/run_config.h"
#include "core/data/shard_cursor.h"
#include "sae/v1/activations.grpc.pb.h"
#include "services/common/rpc.h"
#include "services/trainer/prefetch_queue.h"
#include "services/trainer/stream_metrics.h"

namespace sae::trainer {

struct ActivationStreamOptions {
  // The server: host:port and its index in the trainer's server list (logs, metrics, batches).
  std::string address;
  int server_index = 0;
  // The run and the consumer.
  std::string run_id;
  std::string config_digest;
  int rank = 0;
  int world_size = 1;
  std::string session;  // random per trainer process
  // The trainer group's generation (StreamRequest.generation); 0 when started by hand.
  uint64_t generation = 0;
  config::DType wire_dtype = config::DType::kFloat32;
  int64_t batch_size = 0;  // train_batch_size / world_size
  int64_t d_in = 0;
  // Batches per call at most (a lease); the server may cap it lower.
  int lease = 4;
  // Cursors the rank knows from a checkpoint (ShardCursor bytes, any shards): sent with every
  // call, so a server restarted behind them skips ahead.
  std::vector<std::string> known_cursors;
  absl::Duration call_timeout = absl::Minutes(10);
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration server_deadline = absl::Seconds(60);
  rpc::ClientSecurity security;
};

// What a reader has done so far.
struct ActivationStreamStats {
  int64_t batches = 0;
  int64_t activations = 0;
  int64_t bytes = 0;
  int64_t reconnects = 0;
};

// Thread-safe.
class ActivationStreamReader {
 public:
  // Starts the reading thread. `queue` must outlive the reader; `metrics` may be null.
  // InvalidArgument for a bad address or options.
  static absl::StatusOr<std::unique_ptr<ActivationStreamReader>> Start(
      ActivationStreamOptions options, PrefetchQueue* queue, ServerStreamMetrics* metrics);

  // Stop().
  ~ActivationStreamReader();
  ActivationStreamReader(const ActivationStreamReader&) = delete;
  ActivationStreamReader& operator=(const ActivationStreamReader&) = delete;

  // Ends the thread: at once when the queue is closed (after acknowledging what it received,
  // within 2 s), otherwise by cancelling the call in progress. Idempotent.
  void Stop();

  // The furthest shard cursor seen from this server (ShardCursor bytes; "" before any batch).
  std::string furthest_cursor() const;
  ActivationStreamStats stats() const;
  const ActivationStreamOptions& options() const { return options_; }

 private:
  ActivationStreamReader(ActivationStreamOptions options, PrefetchQueue* queue,
                         ServerStreamMetrics* metrics, std::shared_ptr<grpc::Channel> channel);
  void Loop();
  // One StreamActivations call for at most `lease` batches (0: acknowledge only); counts the
  // batches it queued in `received`.
  grpc::Status Call(int lease, int* received, absl::Duration timeout);
  // Checks and queues one batch; an error that a retry cannot fix.
  absl::Status Accept(v1::ActivationBatch& batch);
  v1::StreamRequest Request(int lease) const;
  // Waits up to `duration` for the channel to connect (returning early when it does); false
  // when Stop came first.
  bool Backoff(absl::Duration duration);

  const ActivationStreamOptions options_;
  PrefetchQueue* const queue_;
  ServerStreamMetrics* const metrics_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::ActivationService::Stub> stub_;

  mutable std::mutex mutex_;  // guards the fields below
  bool stopping_ = false;
  grpc::ClientContext* active_ = nullptr;  // the call in progress
  uint64_t incarnation_ = 0;               // of the last batch received
  uint64_t last_sequence_ = 0;             // in that incarnation, received without a gap
  std::optional<data::ShardCursor> furthest_;
  ActivationStreamStats stats_;

  std::thread thread_;
};

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_ACTIVATION_STREAM_H_
