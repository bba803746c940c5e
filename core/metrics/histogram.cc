#include "core/metrics/histogram.h"

#include <cmath>
#include <utility>

namespace sae::metrics {

std::vector<double> DefaultDurationBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  for (int i = 0; i < count; ++i) bounds.push_back(start + i * width);
  return bounds;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), histogram_(bounds_) {}

void Histogram::Observe(double value) {
  if (!std::isnan(value)) {
    histogram_.Observe(value);
    return;
  }
  // prometheus::Histogram would count NaN in the first bucket (it compares false with every
  // bound); it belongs in +Inf only. Rare, so the vector costs nothing that matters.
  std::vector<double> increments(bounds_.size() + 1, 0.0);
  increments.back() = 1.0;
  histogram_.ObserveMultiple(increments, value);
}

HistogramValue Histogram::Value() const {
  prometheus::ClientMetric metric = histogram_.Collect();
  HistogramValue value;
  value.cumulative_counts.reserve(metric.histogram.bucket.size());
  for (const prometheus::ClientMetric::Bucket& bucket : metric.histogram.bucket) {
    value.cumulative_counts.push_back(bucket.cumulative_count);
  }
  value.sum = metric.histogram.sample_sum;
  value.count = metric.histogram.sample_count;
  return value;
}

}  // namespace sae::metrics
