// A Prometheus counter: a value that only goes up, such as tokens trained or bytes streamed.
#ifndef SAE_CORE_METRICS_COUNTER_H_
#define SAE_CORE_METRICS_COUNTER_H_

#include <atomic>

namespace sae::metrics {

// One labelled child of a counter family (see Family). Obtained from Family<Counter>::Labels;
// never constructed by users. Thread-safe and lock-free: Increment is one compare-and-swap loop on
// an atomic double, cheap enough for every training step.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `amount` (default 1). A counter never goes down: a negative or NaN amount is ignored.
  // Integer totals stay exact up to 2^53.
  void Increment(double amount = 1.0);

  // The current total.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_COUNTER_H_
