// A Prometheus gauge: a value that goes up and down, such as L0, a loss or the buffer fill.
#ifndef SAE_CORE_METRICS_GAUGE_H_
#define SAE_CORE_METRICS_GAUGE_H_

#include <atomic>

namespace sae::metrics {

// One labelled child of a gauge family (see Family). Obtained from Family<Gauge>::Labels; never
// constructed by users. Thread-safe and lock-free: Set is one atomic store, Increment and
// Decrement one compare-and-swap loop.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  // Replaces the value. Any double is allowed, NaN and infinities included.
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }

  // Adds `amount` (default 1); a negative amount subtracts.
  void Increment(double amount = 1.0);

  // Subtracts `amount` (default 1).
  void Decrement(double amount = 1.0) { Increment(-amount); }

  // The current value.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_GAUGE_H_
