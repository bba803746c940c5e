// The Prometheus series of an activation server (docs/operations.md lists them), labelled
// {run_id, server} where server is the shard index.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_SERVER_METRICS_H_
#define SAE_SERVICES_ACTIVATION_SERVER_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/metrics/registry.h"

namespace sae::activation_server {

// Pointers into a registry's families; the registry must outlive them. Updates are atomics.
struct ServerMetrics {
  // Registers the families in `registry` and returns the children of {run_id, server}.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Create(metrics::Registry& registry,
                                                               const std::string& run_id,
                                                               int server);

  // Generation.
  metrics::Counter* generated_tokens;       // sae_activation_generated_tokens_total
  metrics::Histogram* forward_seconds;      // sae_activation_forward_duration_seconds
  metrics::Gauge* buffer_fill;              // sae_activation_buffer_fill_ratio
  metrics::Gauge* buffer_activations;       // sae_activation_buffer_activations
  metrics::Counter* cursor_skips;           // sae_activation_cursor_skips_total
  // Streams.
  metrics::Counter* served_activations;   // sae_stream_served_activations_total
  metrics::Counter* sent_bytes;           // sae_stream_sent_bytes_total
  metrics::Counter* sent_batches;         // sae_stream_sent_batches_total
  metrics::Counter* resent_batches;       // sae_stream_resent_batches_total
  metrics::Counter* dropped_activations;  // sae_stream_dropped_activations_total
  metrics::Gauge* active_consumers;       // sae_stream_active_consumers
  metrics::Gauge* unacknowledged_bytes;   // sae_stream_unacknowledged_bytes
  metrics::Histogram* write_seconds;      // sae_stream_write_duration_seconds
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_SERVER_METRICS_H_
