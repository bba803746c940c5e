#include "core/features/feature_collector.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace sae::features {
namespace {

// splitmix64's finaliser: the sampling key of (feature, token) is a fixed pseudo-random number,
// so runs are reproducible and a sketch's k smallest keys are a uniform sample.
uint32_t SampleKey(int64_t feature, int64_t token) {
  uint64_t z = (static_cast<uint64_t>(feature) * 0x9E3779B97F4A7C15ull) ^
               (static_cast<uint64_t>(token) + 0x632BE59BD9B4E019ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

// Top-context order: higher peak first, then the earlier context.
bool Better(const Example& a, const Example& b) {
  if (a.activation != b.activation) return a.activation > b.activation;
  return a.context < b.context;
}

// Heap order whose front is the worst kept example (std::push_heap keeps the "largest" in
// front, so "less" means better).
bool TopHeapLess(const Example& a, const Example& b) { return Better(a, b); }
// Sketch heap: the largest key in front.
bool KeyLess(const Example& a, const Example& b) { return a.key < b.key; }

}  // namespace

int HistogramBin(float activation) {
  const double e = std::floor((std::log10(static_cast<double>(activation)) - kMinExponent) *
                              kBinsPerDecade);
  if (!(e >= 0)) return 0;  // also NaN
  if (e >= kHistogramBins - 2) return kHistogramBins - 1;
  return static_cast<int>(e) + 1;
}

double HistogramBinLower(int bin) {
  if (bin <= 0) return 0;
  return std::pow(10.0, kMinExponent + static_cast<double>(bin - 1) / kBinsPerDecade);
}

double HistogramBinUpper(int bin) {
  if (bin >= kHistogramBins - 1) return std::numeric_limits<double>::infinity();
  return std::pow(10.0, kMinExponent + static_cast<double>(bin) / kBinsPerDecade);
}

struct FeatureCollector::State {
  int64_t count = 0;
  double sum = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = 0;
  std::vector<int64_t> histogram;
  std::vector<Example> top;  // heap (TopHeapLess): the worst in front
  // Per non-empty histogram bin, the examples with the smallest keys (heap, largest in front).
  std::vector<int16_t> sketch_of_bin;
  std::vector<std::vector<Example>> sketches;
};

FeatureCollector::FeatureCollector(std::vector<int64_t> features, int64_t context_size,
                                   const CollectorOptions& options)
    : features_(std::move(features)), context_size_(context_size), options_(options) {
  states_.resize(features_.size());
}

FeatureCollector::~FeatureCollector() = default;

void FeatureCollector::Add(const at::Tensor& acts, int64_t first_context) {
  TORCH_CHECK(acts.dim() == 2 && acts.size(0) == static_cast<int64_t>(features_.size()) &&
                  acts.size(1) % context_size_ == 0 && acts.scalar_type() == at::kFloat,
              "FeatureCollector::Add: expected float32 [", features_.size(), ", B*",
              context_size_, "], got ", acts.sizes());
  const at::Tensor a = acts.contiguous();
  const int64_t n = a.size(1);
  const int64_t contexts = n / context_size_;
  const float* base = a.data_ptr<float>();
  at::parallel_for(0, static_cast<int64_t>(features_.size()), 8, [&](int64_t lo, int64_t hi) {
    for (int64_t f = lo; f < hi; ++f) {
      AddRow(states_[f], features_[f], base + f * n, contexts, first_context);
    }
  });
  tokens_ += n;
  contexts_ += contexts;
}

void FeatureCollector::AddRow(State& s, int64_t feature, const float* row, int64_t contexts,
                              int64_t first_context) {
  const int64_t T = context_size_;
  const size_t K = static_cast<size_t>(options_.top_k);
  const size_t S = static_cast<size_t>(options_.samples_per_interval);
  auto make_example = [&](const float* r, int64_t context, int64_t pos, float value) {
    Example e;
    e.activation = value;
    e.context = context;
    e.position = static_cast<int32_t>(pos);
    const int64_t start = std::max<int64_t>(0, pos - options_.window_before);
    const int64_t end = std::min<int64_t>(T, pos + options_.window_after + 1);
    e.window_start = static_cast<int32_t>(start);
    e.window.assign(r + start, r + end);
    return e;
  };
  for (int64_t c = 0; c < contexts; ++c) {
    const float* r = row + c * T;
    const int64_t context = first_context + c;
    float peak = 0;
    int64_t peak_pos = -1;
    for (int64_t t = 0; t < T; ++t) {
      const float v = r[t];
      if (!(v > 0)) continue;
      if (s.histogram.empty()) {
        s.histogram.assign(kHistogramBins, 0);
        s.sketch_of_bin.assign(kHistogramBins, -1);
      }
      s.count += 1;
      s.sum += v;
      s.min = std::min(s.min, v);
      s.max = std::max(s.max, v);
      const int bin = HistogramBin(v);
      s.histogram[bin] += 1;
      if (v > peak) {
        peak = v;
        peak_pos = t;
      }
      if (S == 0) continue;
      const uint32_t key = SampleKey(feature, context * T + t);
      int16_t& slot = s.sketch_of_bin[bin];
      if (slot < 0) {
        slot = static_cast<int16_t>(s.sketches.size());
        s.sketches.emplace_back();
      }
      std::vector<Example>& sketch = s.sketches[slot];
      if (sketch.size() < S) {
        sketch.push_back(make_example(r, context, t, v));
        sketch.back().key = key;
        std::push_heap(sketch.begin(), sketch.end(), KeyLess);
      } else if (key < sketch.front().key) {
        std::pop_heap(sketch.begin(), sketch.end(), KeyLess);
        sketch.back() = make_example(r, context, t, v);
        sketch.back().key = key;
        std::push_heap(sketch.begin(), sketch.end(), KeyLess);
      }
    }
    if (peak_pos < 0 || K == 0) continue;
    if (s.top.size() < K) {
      s.top.push_back(make_example(r, context, peak_pos, peak));
      std::push_heap(s.top.begin(), s.top.end(), TopHeapLess);
    } else if (peak > s.top.front().activation) {  // later contexts lose ties
      std::pop_heap(s.top.begin(), s.top.end(), TopHeapLess);
      s.top.back() = make_example(r, context, peak_pos, peak);
      std::push_heap(s.top.begin(), s.top.end(), TopHeapLess);
    }
  }
}

std::vector<FeatureStats> FeatureCollector::Finish() {
  std::vector<FeatureStats> out(features_.size());
  at::parallel_for(0, static_cast<int64_t>(features_.size()), 64, [&](int64_t lo, int64_t hi) {
    for (int64_t f = lo; f < hi; ++f) {
      State& s = states_[f];
      FeatureStats& o = out[f];
      o.feature = features_[f];
      o.count = s.count;
      o.sum = s.sum;
      o.max = s.max;
      o.min = s.count > 0 ? s.min : 0;
      o.histogram = s.histogram.empty() ? std::vector<int64_t>(kHistogramBins, 0)
                                        : std::move(s.histogram);
      o.top = std::move(s.top);
      std::sort(o.top.begin(), o.top.end(), Better);
      if (s.count == 0) continue;
      // Intervals: consecutive non-empty bins, closed once they hold their share of the count.
      const int n_intervals = std::max(1, options_.n_intervals);
      int64_t cumulative = 0;
      int next = 1;
      IntervalSample current;
      std::vector<Example> pool;
      bool open = false;
      for (int bin = 0; bin < kHistogramBins; ++bin) {
        const int64_t c = o.histogram[bin];
        if (c == 0) continue;
        if (!open) {
          current = IntervalSample();
          current.lower = std::max<double>(HistogramBinLower(bin), o.min);
          open = true;
        }
        current.count += c;
        current.upper = std::min<double>(HistogramBinUpper(bin), o.max);
        if (s.sketch_of_bin[bin] >= 0) {
          std::vector<Example>& sk = s.sketches[s.sketch_of_bin[bin]];
          for (Example& e : sk) pool.push_back(std::move(e));
        }
        cumulative += c;
        const bool last_bin = cumulative == s.count;
        if (cumulative * n_intervals >= next * s.count || last_bin) {
          while (next * s.count <= cumulative * n_intervals) ++next;
          // The bottom-S keys of the union of the bins' bottom-S sketches: a uniform sample of
          // the interval's activations.
          const size_t S = std::min(pool.size(), static_cast<size_t>(options_.samples_per_interval));
          std::partial_sort(pool.begin(), pool.begin() + S, pool.end(), KeyLess);
          pool.resize(S);
          std::sort(pool.begin(), pool.end(), Better);
          current.examples = std::move(pool);
          pool.clear();
          o.intervals.push_back(std::move(current));
          open = false;
        }
      }
      s = State();
    }
  });
  return out;
}

}  // namespace sae::features
