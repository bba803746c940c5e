#include "core/features/feature_collector.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace sae::features {
namespace {

// [features, contexts * T] from a nested list, feature-major.
at::Tensor Acts(const std::vector<std::vector<float>>& rows) {
  const int64_t n = static_cast<int64_t>(rows[0].size());
  at::Tensor t = at::empty({static_cast<int64_t>(rows.size()), n}, at::kFloat);
  for (size_t f = 0; f < rows.size(); ++f) {
    for (int64_t i = 0; i < n; ++i) t[f][i] = rows[f][i];
  }
  return t;
}

TEST(HistogramBinTest, LogSpacedEdges) {
  EXPECT_EQ(HistogramBin(1e-7f), 0);
  EXPECT_EQ(HistogramBin(1.0f), 61);  // [10^0, 10^0.1)
  EXPECT_EQ(HistogramBin(1.2f), 61);
  EXPECT_EQ(HistogramBin(1.3f), 62);
  EXPECT_EQ(HistogramBin(2e4f), kHistogramBins - 1);
  EXPECT_DOUBLE_EQ(HistogramBinLower(61), 1.0);
  EXPECT_NEAR(HistogramBinUpper(61), std::pow(10.0, 0.1), 1e-12);
  for (float v : {1e-5f, 0.003f, 0.5f, 7.0f, 999.0f}) {
    const int b = HistogramBin(v);
    EXPECT_LE(HistogramBinLower(b), v * (1 + 1e-6)) << v;
    EXPECT_GT(HistogramBinUpper(b), v * (1 - 1e-6)) << v;
  }
}

TEST(FeatureCollectorTest, CountsTopContextsAndWindows) {
  CollectorOptions options;
  options.top_k = 2;
  options.window_before = 1;
  options.window_after = 1;
  FeatureCollector c({5, 9}, /*context_size=*/4, options);
  // Contexts 0..2 of 4 tokens; feature 9 never fires.
  c.Add(Acts({{0, 1, 3, 0, /**/ 0, 0, 0, 2, /**/ 4, 0, 0.5, 0}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}),
        0);
  EXPECT_EQ(c.tokens(), 12);
  std::vector<FeatureStats> s = c.Finish();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].feature, 5);
  EXPECT_EQ(s[0].count, 5);
  EXPECT_FLOAT_EQ(s[0].sum, 10.5);
  EXPECT_FLOAT_EQ(s[0].max, 4);
  EXPECT_FLOAT_EQ(s[0].min, 0.5);
  ASSERT_EQ(s[0].top.size(), 2u);
  EXPECT_EQ(s[0].top[0].context, 2);  // peak 4 at position 0
  EXPECT_EQ(s[0].top[0].position, 0);
  EXPECT_EQ(s[0].top[0].window_start, 0);
  EXPECT_EQ(s[0].top[0].window, (std::vector<float>{4, 0}));
  EXPECT_EQ(s[0].top[1].context, 0);  // peak 3 at position 2
  EXPECT_EQ(s[0].top[1].window, (std::vector<float>{1, 3, 0}));
  int64_t in_histogram = 0;
  for (int64_t h : s[0].histogram) in_histogram += h;
  EXPECT_EQ(in_histogram, 5);
  EXPECT_EQ(s[1].count, 0);
  EXPECT_TRUE(s[1].top.empty());
  EXPECT_TRUE(s[1].intervals.empty());
}

TEST(FeatureCollectorTest, BatchesGiveTheSameResultAsOnePass) {
  CollectorOptions options;
  options.top_k = 5;
  at::manual_seed(3);
  const int64_t T = 8, contexts = 40;
  // Sparse, heavy-tailed activations of 3 features.
  at::Tensor acts = at::relu(at::randn({3, contexts * T}) - 1.0).pow(3) * 10;
  FeatureCollector whole({0, 1, 2}, T, options), batched({0, 1, 2}, T, options);
  whole.Add(acts, 0);
  for (int64_t c = 0; c < contexts; c += 7) {
    const int64_t n = std::min<int64_t>(7, contexts - c);
    batched.Add(acts.narrow(1, c * T, n * T).contiguous(), c);
  }
  std::vector<FeatureStats> a = whole.Finish(), b = batched.Finish();
  for (int f = 0; f < 3; ++f) {
    EXPECT_EQ(a[f].count, b[f].count);
    EXPECT_EQ(a[f].histogram, b[f].histogram);
    ASSERT_EQ(a[f].top.size(), b[f].top.size());
    for (size_t i = 0; i < a[f].top.size(); ++i) {
      EXPECT_EQ(a[f].top[i].context, b[f].top[i].context);
      EXPECT_EQ(a[f].top[i].window, b[f].top[i].window);
    }
    ASSERT_EQ(a[f].intervals.size(), b[f].intervals.size());
    for (size_t i = 0; i < a[f].intervals.size(); ++i) {
      ASSERT_EQ(a[f].intervals[i].examples.size(), b[f].intervals[i].examples.size());
      for (size_t j = 0; j < a[f].intervals[i].examples.size(); ++j) {
        EXPECT_EQ(a[f].intervals[i].examples[j].context, b[f].intervals[i].examples[j].context);
        EXPECT_EQ(a[f].intervals[i].examples[j].position, b[f].intervals[i].examples[j].position);
      }
    }
    // Brute force: count, max and the top contexts by peak.
    const at::Tensor row = acts[f].view({contexts, T});
    EXPECT_EQ(a[f].count, (row > 0).sum().item<int64_t>());
    EXPECT_FLOAT_EQ(a[f].max, row.max().item<float>());
    const at::Tensor peaks = std::get<0>(row.max(1));
    const at::Tensor order = std::get<1>(peaks.sort(0, /*descending=*/true));
    for (size_t i = 0; i < a[f].top.size(); ++i) {
      EXPECT_EQ(a[f].top[i].context, order[i].item<int64_t>()) << "feature " << f << " rank " << i;
    }
  }
}

TEST(FeatureCollectorTest, IntervalSamplesLieInTheirIntervalsAndCoverTheCount) {
  CollectorOptions options;
  options.n_intervals = 10;
  options.samples_per_interval = 4;
  at::manual_seed(5);
  const int64_t T = 16, contexts = 500;
  at::Tensor acts = at::exp(at::randn({1, contexts * T}) * 2) * (at::rand({1, contexts * T}) < 0.3);
  FeatureCollector c({0}, T, options);
  c.Add(acts, 0);
  const FeatureStats s = c.Finish()[0];
  ASSERT_GE(s.intervals.size(), 5u);
  EXPECT_LE(s.intervals.size(), 10u);
  int64_t total = 0;
  double previous_upper = 0;
  const float* a = acts.data_ptr<float>();
  for (const IntervalSample& in : s.intervals) {
    total += in.count;
    EXPECT_GE(in.lower, previous_upper * (1 - 1e-6));
    previous_upper = in.upper;
    // Each holds roughly a tenth of the firings (bins are ~26% wide).
    EXPECT_LT(in.count, s.count / 4);
    ASSERT_EQ(in.examples.size(), 4u);
    for (const Example& e : in.examples) {
      EXPECT_GE(e.activation, in.lower * (1 - 1e-6));
      EXPECT_LE(e.activation, in.upper * (1 + 1e-6));
      EXPECT_FLOAT_EQ(a[e.context * T + e.position], e.activation);
      EXPECT_FLOAT_EQ(e.window[e.position - e.window_start], e.activation);
    }
  }
  EXPECT_EQ(total, s.count);
}

}  // namespace
}  // namespace sae::features
