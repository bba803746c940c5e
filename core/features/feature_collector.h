// Per-feature statistics of an SAE over a stream of token batches, in memory bounded by the
// number of features (never by the number of tokens): firing count, sum, min and max of the
// non-zero activations, a log-spaced histogram of them, the top-K contexts by peak activation,
// and uniform samples from quantile intervals of the non-zero activations, each example with the
// feature's activation on a window of tokens around it. Definitions: docs/features.md.
//
//   FeatureCollector c(features, context_size, options);
//   for each batch: c.Add(acts, first_context);  // acts [features.size(), B*T], feature-major
//   std::vector<FeatureStats> stats = c.Finish();
#ifndef SAE_CORE_FEATURES_FEATURE_COLLECTOR_H_
#define SAE_CORE_FEATURES_FEATURE_COLLECTOR_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace sae::features {

struct CollectorOptions {
  int64_t top_k = 20;            // contexts per feature, by their peak activation
  int window_before = 10;        // tokens shown before an example's token
  int window_after = 5;          // and after it (clipped to the context)
  int n_intervals = 10;          // quantile intervals of the non-zero activations
  int samples_per_interval = 5;  // uniform samples from each
};

// The histogram's fixed log-spaced bins over non-zero activations: bin 0 holds (0, 1e-6), bins
// 1..100 are [10^(-6 + (i-1)/10), 10^(-6 + i/10)) (ten per decade), bin 101 holds [1e4, inf).
inline constexpr int kBinsPerDecade = 10;
inline constexpr int kMinExponent = -6;
inline constexpr int kMaxExponent = 4;
inline constexpr int kHistogramBins = (kMaxExponent - kMinExponent) * kBinsPerDecade + 2;
int HistogramBin(float activation);  // activation > 0
double HistogramBinLower(int bin);   // 0 for bin 0
double HistogramBinUpper(int bin);   // +inf for the last bin

// One token of the pass where the feature fired, with its neighbourhood in the same context.
struct Example {
  float activation = 0;       // the feature's activation on the token
  int64_t context = 0;        // index of the context in the pass
  int32_t position = 0;       // the token's position in the context
  int32_t window_start = 0;   // position of window[0]
  std::vector<float> window;  // the feature's activation on positions window_start.. (clipped)
  uint32_t key = 0;           // sampling key (interval samples only)
};

// Uniform samples (without replacement, at most samples_per_interval) of the tokens whose
// activation lies in [lower, upper], one of ~n_intervals intervals that each hold about the same
// share of the non-zero activations; cut at histogram bin edges, clipped to [min, max].
struct IntervalSample {
  double lower = 0, upper = 0;
  int64_t count = 0;  // non-zero activations in the interval
  std::vector<Example> examples;  // highest activation first
};

struct FeatureStats {
  int64_t feature = 0;
  int64_t count = 0;  // tokens with activation > 0
  double sum = 0;     // of the activations
  float min = 0, max = 0;  // of the non-zero activations (0 when dead)
  std::vector<int64_t> histogram;  // kHistogramBins counts
  std::vector<Example> top;        // top contexts, peak activation descending, then context
  std::vector<IntervalSample> intervals;  // lowest first
};

class FeatureCollector {
 public:
  // `features`: the SAE feature index of each row of Add's activations.
  FeatureCollector(std::vector<int64_t> features, int64_t context_size,
                   const CollectorOptions& options);
  ~FeatureCollector();
  FeatureCollector(const FeatureCollector&) = delete;
  FeatureCollector& operator=(const FeatureCollector&) = delete;

  // A batch of whole contexts first_context, first_context+1, ...: `acts` is float32
  // [features.size(), B * context_size], contiguous, row f holding feature f's activation on
  // every token (context-major). Features are processed in parallel on LibTorch's threads.
  void Add(const at::Tensor& acts, int64_t first_context);

  int64_t tokens() const { return tokens_; }
  int64_t contexts() const { return contexts_; }

  // The statistics, one per feature in the constructor's order. Call once.
  std::vector<FeatureStats> Finish();

 private:
  struct State;
  void AddRow(State& s, int64_t feature, const float* row, int64_t contexts, int64_t first_context);

  std::vector<int64_t> features_;
  int64_t context_size_;
  CollectorOptions options_;
  std::vector<State> states_;
  int64_t tokens_ = 0;
  int64_t contexts_ = 0;
};

}  // namespace sae::features

#endif  // SAE_CORE_FEATURES_FEATURE_COLLECTOR_H_
