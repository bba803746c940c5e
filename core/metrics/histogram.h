// A Prometheus histogram: observations counted into buckets, with their sum and count. Durations
// are observed in seconds.
#ifndef SAE_CORE_METRICS_HISTOGRAM_H_
#define SAE_CORE_METRICS_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

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
// never constructed by users. Thread-safe and lock-free: Observe is a binary search over the
// bounds, one atomic increment and one compare-and-swap loop for the sum.
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

  // A snapshot of the buckets, sum and count. Under concurrent Observe calls the buckets and count
  // always agree with each other; the sum may lag them by the observations in flight.
  HistogramValue Value() const;

  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  // bounds_.size() + 1 non-cumulative counts; the last one is the +Inf bucket.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_HISTOGRAM_H_
