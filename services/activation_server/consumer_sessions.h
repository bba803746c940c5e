// Who has received what. For each consumer (trainer rank) an activation server keeps the
// batches it sent but that the consumer has not acknowledged yet, numbered by sequence, so that
// a consumer whose stream broke gets exactly those again and nothing twice, and no batch ever
// goes to two consumers.
//
// A StreamActivations call attaches to its consumer's session; the request's last_sequence
// acknowledges (and frees) every batch up to it. A call is a lease of at most max_batches
// batches, so a session never holds more than one lease's worth.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_CONSUMER_SESSIONS_H_
#define SAE_SERVICES_ACTIVATION_SERVER_CONSUMER_SESSIONS_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sae/v1/activations.pb.h"
#include "services/activation_server/server_metrics.h"

namespace sae::activation_server {

class ConsumerSessions;

// One StreamActivations call attached to its consumer's session. Only this call touches the
// session's batches while it is attached; destroying it detaches.
class ConsumerCall {
 public:
  ~ConsumerCall();
  ConsumerCall(const ConsumerCall&) = delete;
  ConsumerCall& operator=(const ConsumerCall&) = delete;

  // The batches sent earlier and not acknowledged, oldest first, marked `resent`. The pointers
  // stay valid while this call is attached.
  std::vector<const v1::ActivationBatch*> Unacknowledged();

  // Gives `batch` the session's next sequence number and keeps it until acknowledged. Returns
  // the kept batch, valid while this call is attached.
  const v1::ActivationBatch* Keep(std::unique_ptr<v1::ActivationBatch> batch);

  // Whether a newer call of the same consumer took over; this call must end.
  bool replaced() const;

 private:
  friend class ConsumerSessions;
  ConsumerCall(ConsumerSessions* sessions, int rank, uint64_t call_id)
      : sessions_(sessions), rank_(rank), call_id_(call_id) {}

  ConsumerSessions* const sessions_;
  const int rank_;
  const uint64_t call_id_;
};

// Thread-safe.
class ConsumerSessions {
 public:
  // `incarnation`: this server process's id, which batches carry. `metrics` may be null.
  ConsumerSessions(uint64_t incarnation, ServerMetrics* metrics);

  // Attaches a call of the consumer request.consumer_rank:
  //   - a new consumer_session (or consumer_count) for the rank starts a new session, and the
  //     batches the previous session left unacknowledged are dropped (counted);
  //   - otherwise the batches up to request.last_sequence are acknowledged (when the request's
  //     incarnation is this server's);
  //   - a call of the same rank still attached is cancelled, and Attach waits at most `wait`
  //     for it to detach: Aborted when it does not.
  // `context` must stay valid until the returned call is destroyed.
  absl::StatusOr<std::unique_ptr<ConsumerCall>> Attach(const v1::StreamRequest& request,
                                                       grpc::ServerContext* context,
                                                       absl::Duration wait);

  int sessions() const;
  int attached() const;
  // Payload bytes of the batches kept for resending, over all sessions: what the server holds
  // for its consumers. A call keeps a batch just before writing it, so a consumer that stops
  // reading holds only what fits its stream's flow-control windows, plus the batch waiting.
  int64_t unacknowledged_bytes() const;
  uint64_t incarnation() const { return incarnation_; }

 private:
  friend class ConsumerCall;
  struct Session {
    std::string id;
    int32_t count = 0;
    uint64_t next_sequence = 1;
    std::deque<std::unique_ptr<v1::ActivationBatch>> unacknowledged;  // by sequence
    uint64_t call_id = 0;                                             // attached call, 0: none
    grpc::ServerContext* context = nullptr;
  };
  void Detach(int rank, uint64_t call_id);
  void DropUnacknowledged(Session& session);
  // Adds `delta` to unacknowledged_bytes_ and its gauge. Under mutex_.
  void CountHeld(int64_t delta);

  const uint64_t incarnation_;
  ServerMetrics* const metrics_;
  mutable std::mutex mutex_;
  std::condition_variable detached_;
  std::map<int, Session> sessions_;
  uint64_t next_call_id_ = 1;
  int attached_ = 0;
  int64_t unacknowledged_bytes_ = 0;
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_CONSUMER_SESSIONS_H_
