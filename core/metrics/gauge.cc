#include "core/metrics/gauge.h"

namespace sae::metrics {

void Gauge::Increment(double amount) {
  double current = value_.load(std::memory_order_relaxed);
  while (!value_.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

}  // namespace sae::metrics
