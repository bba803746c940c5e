// A Prometheus counter: a value that only goes up, such as tokens trained or bytes streamed.
#ifndef SAE_CORE_METRICS_COUNTER_H_
#define SAE_CORE_METRICS_COUNTER_H_

#include "prometheus/client_metric.h"
#include "prometheus/counter.h"

namespace sae::metrics {

// One labelled child of a counter family (see Family). Obtained from Family<Counter>::Labels;
// never constructed by users. The value lives in a prometheus::Counter (an atomic double):
// Increment is one compare-and-swap loop, cheap enough for every training step.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount` (default 1). A counter never goes down: a negative or NaN amount is ignored
  // (prometheus::Counter ignores negative amounts but would add a NaN). Integer totals stay exact
  // up to 2^53.
  void Increment(double amount = 1.0) {
    if (!(amount >= 0.0)) return;  // Also rejects NaN, for which every comparison is false.
    counter_.Increment(amount);
  }

  // The current total.
  double Value() const { return counter_.Value(); }

  // The value as prometheus-cpp exports it, without labels (the family adds them).
  prometheus::ClientMetric Collect() const { return counter_.Collect(); }

 private:
  prometheus::Counter counter_;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_COUNTER_H_
