// A Prometheus histogram: observations counted into buckets, with their sum and count. Durations
// are observed in seconds.
#ifndef SAE_CORE_METRICS_HISTOGRAM_H_
#define SAE_CORE_METRICS_HISTOGRAM_H_

#include <cstdint>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/histogram.h"

namespace sae::metrics {

// Bucket upper bounds for durations in seconds, from 5 ms to 10 s (the Go client's defaults):
// 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10.
std::vector<double> DefaultDurationBuckets();

// `count` bounds: start, start * factor, start * factor^2, ... Needs start > 0 and factor > 1;
// otherwise the bounds are not increasing and Registry::AddHistogram rejects them.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// `count` bounds: start, start + width, start + 2 * width, ... Needs width > 0; otherwise
// Registry::AddHistogram rejects them.
std::vector<double> LinearBuckets(double start, double width, int count);

// What a histogram holds at one moment, as the exposition format wants it.
struct HistogramValue {
  // cumulative_counts[i] = observations <= bounds[i]; one more entry at the end for +Inf, which
  // equals `count`.
  std::vector<uint64_t> cumulative_counts;
  double sum = 0.0;
  uint64_t count = 0;
};

// One labelled child of a histogram family (see Family). Obtained from Family<Histogram>::Labels;
// never constructed by users. The buckets and sum live in a prometheus::Histogram: Observe is a
// binary search over the bounds and a few atomic updates under prometheus-cpp's own mutex, which
// keeps buckets, count and sum consistent with each other.
class Histogram {
 public:
  // `bounds` are strictly increasing finite upper bounds (validated by Registry::AddHistogram);
  // the +Inf bucket is implicit.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value` into the first bucket whose bound is >= value (the +Inf bucket when none is,
  // or when value is NaN) and adds it to the sum.
  void Observe(double value);

  // A snapshot of the buckets, sum and count, taken consistently.
  HistogramValue Value() const;

  const std::vector<double>& bounds() const { return bounds_; }

  // The buckets (cumulative, ending with +Inf), sum and count as prometheus-cpp exports them,
  // without labels (the family adds them).
  prometheus::ClientMetric Collect() const { return histogram_.Collect(); }

 private:
  const std::vector<double> bounds_;
  prometheus::Histogram histogram_;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_HISTOGRAM_H_
