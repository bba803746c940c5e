#include "core/metrics/counter.h"

namespace sae::metrics {

void Counter::Increment(double amount) {
  if (!(amount >= 0.0)) return;  // Also rejects NaN, for which every comparison is false.
  double current = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

}  // namespace sae::metrics
