#include "services/trainer/stream_metrics.h"

#include "core/util/status.h"

namespace sae::trainer {

absl::StatusOr<std::unique_ptr<ServerStreamMetrics>> ServerStreamMetrics::Create(
    metrics::Registry& registry, const std::string& run_id, int rank, int server) {
  auto m = std::make_unique<ServerStreamMetrics>();
  const std::vector<std::string> labels = {"run_id", "rank", "server"};
  const std::vector<std::string> values = {run_id, std::to_string(rank), std::to_string(server)};
  metrics::LabelledSeries series(registry, labels, values);
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_stream_received_activations_total",
                                        "Activations received from the activation server.",
                                        &m->received_activations));
  SAE_RETURN_IF_ERROR(series.AddCounter(
      "sae_stream_received_bytes_total",
      "Activation payload bytes received from the activation server.", &m->received_bytes));
  SAE_RETURN_IF_ERROR(series.AddCounter("sae_stream_received_batches_total",
                                        "Batches received from the activation server.",
                                        &m->received_batches));
  SAE_RETURN_IF_ERROR(
      series.AddCounter("sae_stream_reconnects_total",
                        "Stream calls to the activation server that failed and were "
                        "retried.",
                        &m->reconnects));
  SAE_RETURN_IF_ERROR(series.AddGauge(
      "sae_stream_server_up", "1 while the last call to the activation server succeeded.", &m->up));
  SAE_RETURN_IF_ERROR(
      series.AddGauge("sae_stream_server_away_seconds",
                      "Seconds since the activation server was last reachable (0 while "
                      "it is).",
                      &m->away_seconds));
  return m;
}

absl::StatusOr<std::unique_ptr<PrefetchMetrics>> PrefetchMetrics::Create(
    metrics::Registry& registry, const std::string& run_id, int rank) {
  auto m = std::make_unique<PrefetchMetrics>();
  SAE_ASSIGN_OR_RETURN(
      auto* family,
      registry.AddGauge("sae_train_prefetch_queue_batches",
                        "Batches received and waiting for the training step.", {"run_id", "rank"}));
  m->queue_batches = &family->Labels({run_id, std::to_string(rank)});
  return m;
}

}  // namespace sae::trainer
