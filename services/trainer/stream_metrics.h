// The trainer's series about its streams, beside core/training's TrainingMetrics: per
// activation server {run_id, rank, server} and per rank {run_id, rank}.
#ifndef SAE_SERVICES_TRAINER_STREAM_METRICS_H_
#define SAE_SERVICES_TRAINER_STREAM_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/metrics/registry.h"

namespace sae::trainer {

// One activation server as one trainer rank sees it. `server` is the index in --servers.
struct ServerStreamMetrics {
  static absl::StatusOr<std::unique_ptr<ServerStreamMetrics>> Create(metrics::Registry& registry,
                                                                     const std::string& run_id,
                                                                     int rank, int server);
  metrics::Counter* received_activations;  // sae_stream_received_activations_total
  metrics::Counter* received_bytes;        // sae_stream_received_bytes_total
  metrics::Counter* received_batches;      // sae_stream_received_batches_total
  metrics::Counter* reconnects;            // sae_stream_reconnects_total
  metrics::Gauge* up;                      // sae_stream_server_up
  metrics::Gauge* away_seconds;            // sae_stream_server_away_seconds
};

// The rank's prefetch queue.
struct PrefetchMetrics {
  static absl::StatusOr<std::unique_ptr<PrefetchMetrics>> Create(metrics::Registry& registry,
                                                                 const std::string& run_id,
                                                                 int rank);
  metrics::Gauge* queue_batches;  // sae_train_prefetch_queue_batches
};

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_STREAM_METRICS_H_
