#include "services/activation_server/server_metrics.h"

#include "core/util/status.h"

namespace sae::activation_server {

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(metrics::Registry& registry,
                                                                     const std::string& run_id,
                                                                     int server) {
  auto m = std::make_unique<ServerMetrics>();
  const std::vector<std::string> labels = {"run_id", "server"};
  const std::vector<std::string> values = {run_id, std::to_string(server)};
  metrics::LabelledSeries series(registry, labels, values);
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_activation_generated_tokens_total",
                                        "Tokens run through the model (contexts x context_size).",
                                        &m->generated_tokens));
  // A forward of store_batch_size contexts takes from milliseconds (shallow hooks) to tens of
  // seconds (GPT-2 small to a deep layer on a CPU): the default 5 ms..10 s buckets plus 30 and
  // 60 s.
  std::vector<double> forward_buckets = metrics::DefaultDurationBuckets();
  forward_buckets.push_back(30);
  forward_buckets.push_back(60);
  SAE_RETURN_IF_ERROR(
      series.AddHistogram("sae_activation_forward_duration_seconds",
                          "Wall time of one model forward of store_batch_size contexts.",
                          forward_buckets, &m->forward_seconds));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_activation_buffer_fill_ratio",
                                      "Activations held in the mixing buffer over its capacity.",
                                      &m->buffer_fill));
  SAE_RETURN_IF_ERROR(series.AddGauge("sae_activation_buffer_activations",
                                      "Activations held in the mixing buffer.",
                                      &m->buffer_activations));
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_activation_cursor_skips_total",
                                        "Times generation skipped ahead to a consumer's cursor.",
                                        &m->cursor_skips));
  SAE_RETURN_IF_ERROR(series.AddCounter(
      "sae_stream_served_activations_total",
      "Activations handed to consumers (each once; resends excluded).", &m->served_activations));
  SAE_RETURN_IF_ERROR(series.AddCounter(
      "sae_stream_sent_bytes_total",
      "Activation payload bytes written to streams, resends included.", &m->sent_bytes));
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_stream_sent_batches_total",
                                        "Batches written to streams, resends included.",
                                        &m->sent_batches));
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_stream_resent_batches_total",
                                        "Unacknowledged batches written again after a reconnect.",
                                        &m->resent_batches));
  SAE_RETURN_IF_ERROR(
      series.AddCounter("sae_stream_dropped_activations_total",
                        "Unacknowledged activations dropped because their consumer session ended.",
                        &m->dropped_activations));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_stream_active_consumers", "StreamActivations calls in progress.", &m->active_consumers));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_stream_unacknowledged_bytes",
      "Payload bytes of batches sent (or being sent) that their consumers have not acknowledged.",
      &m->unacknowledged_bytes));
  SAE_RETURN_IF_ERROR(
      series.AddHistogram("sae_stream_write_duration_seconds",
                          "Time to write one batch to a stream (flow control included).",
                          metrics::DefaultDurationBuckets(), &m->write_seconds));
  return m;
}

}  // namespace sae::activation_server
