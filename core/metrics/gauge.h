// A Prometheus gauge: a value that goes up and down, such as L0, a loss or the buffer fill.
#ifndef SAE_CORE_METRICS_GAUGE_H_
#define SAE_CORE_METRICS_GAUGE_H_

#include "prometheus/client_metric.h"
#include "prometheus/gauge.h"

namespace sae::metrics {

// One labelled child of a gauge family (see Family). Obtained from Family<Gauge>::Labels; never
// constructed by users. The value lives in a prometheus::Gauge (an atomic double): Set is one
// atomic store, Increment and Decrement one compare-and-swap loop.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  // Replaces the value. Any double is allowed, NaN and infinities included.
  void Set(double value) { gauge_.Set(value); }

  // Adds `amount` (default 1); a negative amount subtracts.
  void Increment(double amount = 1.0) { gauge_.Increment(amount); }

  // Subtracts `amount` (default 1).
  void Decrement(double amount = 1.0) { gauge_.Decrement(amount); }

  // The current value.
  double Value() const { return gauge_.Value(); }

  // The value as prometheus-cpp exports it, without labels (the family adds them).
  prometheus::ClientMetric Collect() const { return gauge_.Collect(); }

 private:
  prometheus::Gauge gauge_;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_GAUGE_H_
