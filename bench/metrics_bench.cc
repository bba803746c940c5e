// core/metrics' hot path: Counter::Increment, Gauge::Set, Histogram::Observe on a child held by
// reference, and Family::Labels (the lookup callers should do once), one thread. Each is printed
// beside a reference measured in the same run: what core/metrics did before it moved onto
// prometheus-cpp (a compare-and-swap loop on a std::atomic<double>, a relaxed store, a lock-free
// histogram), and for Labels a locked std::map lookup of the same keys.
//
//   build/bench/metrics_bench [iterations]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/metrics/registry.h"

namespace {

using Clock = std::chrono::steady_clock;

// Nanoseconds per call of `body(i)` over `n` calls.
template <typename Body>
double NanosPerCall(long n, Body body) {
  const Clock::time_point start = Clock::now();
  for (long i = 0; i < n; ++i) body(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(n);
}

void Add(std::atomic<double>& value, double amount) {
  double current = value.load(std::memory_order_relaxed);
  while (!value.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

// The histogram core/metrics had before prometheus-cpp: per-bucket atomic counts, CAS on the sum.
class PlainHistogram {
 public:
  explicit PlainHistogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
  }
  void Observe(double value) {
    size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                        bounds_.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    Add(sum_, value);
  }
  uint64_t Count() const {
    uint64_t total = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) total += counts_[i].load();
    return total;
  }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

void Row(const char* name, double ns, const char* reference_name, double reference_ns) {
  std::printf("  %-22s %7.2f ns   %-28s %7.2f ns   ratio %.2f\n", name, ns, reference_name,
              reference_ns, ns / reference_ns);
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? std::atol(argv[1]) : 20'000'000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: metrics_bench [iterations > 0]\n");
    return 2;
  }
  sae::metrics::Registry registry;
  auto* counters = *registry.AddCounter("sae_bench_total", "Bench.", {"run_id", "rank"});
  auto* gauges = *registry.AddGauge("sae_bench", "Bench.", {"run_id", "rank"});
  auto* histograms = *registry.AddHistogram("sae_bench_seconds", "Bench.", {"run_id", "rank"});
  sae::metrics::Counter& counter = counters->Labels({"run-1", "0"});
  sae::metrics::Gauge& gauge = gauges->Labels({"run-1", "0"});
  sae::metrics::Histogram& histogram = histograms->Labels({"run-1", "0"});
  for (int rank = 1; rank < 8; ++rank) counters->Labels({"run-1", std::to_string(rank)});

  std::atomic<double> plain_counter{0.0};
  std::atomic<double> plain_gauge{0.0};
  PlainHistogram plain_histogram(sae::metrics::DefaultDurationBuckets());
  std::mutex map_mutex;
  std::map<std::vector<std::string>, int> map;
  for (int rank = 0; rank < 8; ++rank) map[{"run-1", std::to_string(rank)}] = rank;

  // Observations spread over the buckets, computed outside the timed loops.
  std::vector<double> samples(1024);
  for (size_t i = 0; i < samples.size(); ++i) samples[i] = 0.001 * static_cast<double>(i * 13);

  std::printf("metrics_bench: %ld calls each, one thread\n", n);
  Row("Counter::Increment", NanosPerCall(n, [&](long) { counter.Increment(); }),
      "atomic<double> CAS (ref)", NanosPerCall(n, [&](long) { Add(plain_counter, 1.0); }));
  Row("Gauge::Set", NanosPerCall(n, [&](long i) { gauge.Set(static_cast<double>(i)); }),
      "atomic<double> store (ref)", NanosPerCall(n, [&](long i) {
        plain_gauge.store(static_cast<double>(i), std::memory_order_relaxed);
      }));
  Row("Histogram::Observe", NanosPerCall(n, [&](long i) { histogram.Observe(samples[i & 1023]); }),
      "lock-free histogram (ref)",
      NanosPerCall(n, [&](long i) { plain_histogram.Observe(samples[i & 1023]); }));
  const long lookups = std::max(1L, n / 20);
  const std::vector<std::string> key = {"run-1", "3"};
  int found = 0;
  sae::metrics::Counter* last = nullptr;
  Row("Family::Labels", NanosPerCall(lookups, [&](long) { last = &counters->Labels(key); }),
      "locked map find (ref)", NanosPerCall(lookups, [&](long) {
        std::lock_guard<std::mutex> lock(map_mutex);
        found += map.find(key)->second;
      }));
  // Use the results, so that no loop is optimized away.
  if (counter.Value() != static_cast<double>(n) || plain_counter.load() != static_cast<double>(n) ||
      histogram.Value().count != static_cast<uint64_t>(n) ||
      plain_histogram.Count() != static_cast<uint64_t>(n) || found != 3 * lookups ||
      last != &counters->Labels(key) || gauge.Value() != plain_gauge.load()) {
    std::fprintf(stderr, "metrics_bench: a loop lost updates\n");
    return 1;
  }
  return 0;
}
