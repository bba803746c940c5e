#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "core/metrics/counter.h"
#include "core/metrics/gauge.h"
#include "core/metrics/histogram.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using ::testing::ElementsAre;

TEST(CounterTest, StartsAtZeroAndAddsIncrements) {
  Counter counter;
  EXPECT_EQ(counter.Value(), 0.0);
  counter.Increment();
  counter.Increment(2.5);
  EXPECT_EQ(counter.Value(), 3.5);
}

TEST(CounterTest, IgnoresNegativeAndNanIncrements) {
  Counter counter;
  counter.Increment(5);
  counter.Increment(-1);
  counter.Increment(kNaN);
  EXPECT_EQ(counter.Value(), 5.0);
}

TEST(CounterTest, CountsExactlyUnderManyThreads) {
  Counter counter;
  constexpr int kThreads = 8;
  constexpr int kIncrementsPerThread = 200000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < kIncrementsPerThread; ++i) counter.Increment();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.Value(), static_cast<double>(kThreads) * kIncrementsPerThread);
}

TEST(GaugeTest, SetsIncrementsAndDecrements) {
  Gauge gauge;
  gauge.Set(10);
  gauge.Increment(2);
  gauge.Decrement(0.5);
  EXPECT_EQ(gauge.Value(), 11.5);
  gauge.Set(-3);
  EXPECT_EQ(gauge.Value(), -3.0);
}

TEST(GaugeTest, KeepsBalancedIncrementsAndDecrementsExactUnderManyThreads) {
  Gauge gauge;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&gauge, t] {
      for (int i = 0; i < 100000; ++i) t % 2 == 0 ? gauge.Increment() : gauge.Decrement();
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(gauge.Value(), 0.0);
}

TEST(HistogramTest, CountsAnObservationEqualToABoundIntoThatBucket) {
  Histogram histogram({1, 2, 5});
  histogram.Observe(1);    // le="1"
  histogram.Observe(1.5);  // le="2"
  histogram.Observe(5);    // le="5"
  histogram.Observe(7);    // le="+Inf" only
  HistogramValue value = histogram.Value();
  EXPECT_THAT(value.cumulative_counts, ElementsAre(1, 2, 3, 4));
  EXPECT_EQ(value.count, 4u);
  EXPECT_EQ(value.sum, 14.5);
}

TEST(HistogramTest, CountsNanOnlyInTheInfBucket) {
  Histogram histogram({1});
  histogram.Observe(kNaN);
  HistogramValue value = histogram.Value();
  EXPECT_THAT(value.cumulative_counts, ElementsAre(0, 1));
  EXPECT_TRUE(std::isnan(value.sum));
}

TEST(HistogramTest, CountsEveryObservationUnderManyThreads) {
  Histogram histogram(DefaultDurationBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&histogram] {
      for (int i = 0; i < 50000; ++i) histogram.Observe(0.25);
    });
  }
  for (std::thread& thread : threads) thread.join();
  HistogramValue value = histogram.Value();
  EXPECT_EQ(value.count, 400000u);
  EXPECT_EQ(value.sum, 100000.0);             // 0.25 is exact in binary, so is every partial sum.
  EXPECT_EQ(value.cumulative_counts[4], 0u);  // le="0.1"
  EXPECT_EQ(value.cumulative_counts[5], 400000u);  // le="0.25"
}

TEST(HistogramTest, DefaultDurationBucketsSpanFiveMillisecondsToTenSeconds) {
  EXPECT_THAT(DefaultDurationBuckets(),
              ElementsAre(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10));
}

TEST(HistogramTest, BucketHelpersBuildExponentialAndLinearBounds) {
  EXPECT_THAT(ExponentialBuckets(1, 2, 4), ElementsAre(1, 2, 4, 8));
  EXPECT_THAT(LinearBuckets(0.5, 0.5, 3), ElementsAre(0.5, 1.0, 1.5));
}

}  // namespace
}  // namespace sae::metrics
