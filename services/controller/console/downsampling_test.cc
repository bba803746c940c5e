#include "services/controller/console/downsampling.h"

#include <algorithm>
#include <set>

#include "gtest/gtest.h"

namespace sae::controller {
namespace {

// Applies every Change to a set of stored steps, as the run store would.
class StoredSeries {
 public:
  explicit StoredSeries(size_t capacity) : series_(capacity) {}
  void Add(int64_t step) {
    DownsampledSeries::Change change = series_.Add(step);
    for (int64_t removed : change.removed_steps) {
      EXPECT_EQ(stored_.erase(removed), 1u) << "removed a step that was not stored: " << removed;
    }
    stored_.insert(step);
  }
  const DownsampledSeries& series() const { return series_; }
  const std::set<int64_t>& stored() const { return stored_; }

 private:
  DownsampledSeries series_;
  std::set<int64_t> stored_;
};

void ExpectIncreasingSteps(const DownsampledSeries& series) {
  for (size_t i = 1; i < series.points().size(); ++i) {
    EXPECT_LT(series.points()[i - 1].step, series.points()[i].step);
  }
}

TEST(DownsampledSeriesTest, KeepsEveryReportUntilTheCapacity) {
  StoredSeries stored(16);
  for (int64_t step = 5; step <= 80; step += 5) stored.Add(step);
  EXPECT_EQ(stored.series().points().size(), 16u);
  EXPECT_EQ(stored.series().stride(), 1);
  EXPECT_EQ(stored.stored().size(), 16u);
}

TEST(DownsampledSeriesTest, KeepsTheFirstAndNewestReportsWithinABoundedCount) {
  StoredSeries stored(64);
  for (int64_t step = 1; step <= 100000; ++step) {
    stored.Add(step * 10);
    const auto& points = stored.series().points();
    ASSERT_LE(points.size(), 64u) << "after step " << step;
    ASSERT_EQ(points.front().step, 10) << "the first report stays";
    ASSERT_EQ(points.back().step, step * 10) << "the newest report is always there";
  }
  ExpectIncreasingSteps(stored.series());
  // The stored keys are exactly the series' points.
  std::set<int64_t> steps;
  for (const auto& point : stored.series().points()) steps.insert(point.step);
  EXPECT_EQ(steps, stored.stored());
  // Halving keeps the resolution above half the capacity: the points cover the run evenly.
  EXPECT_GE(stored.series().points().size(), 32u);
  EXPECT_EQ(stored.series().stride(), 2048);
}

TEST(DownsampledSeriesTest, SpacesThePointsEvenlyAfterHalving) {
  StoredSeries stored(10);
  for (int64_t step = 0; step < 1000; ++step) stored.Add(step);
  const auto& points = stored.series().points();
  // Between the first and the newest, every point is on the grid of the stride.
  for (size_t i = 1; i + 1 < points.size(); ++i) {
    EXPECT_EQ(points[i].index % stored.series().stride(), 0) << "point " << i;
  }
}

TEST(DownsampledSeriesTest, DropsThePointsARestartRolledBack) {
  StoredSeries stored(100);
  for (int64_t step = 10; step <= 300; step += 10) stored.Add(step);
  stored.Add(250);  // resumed from the checkpoint at step 240, first report at 250
  const auto& points = stored.series().points();
  EXPECT_EQ(points.back().step, 250);
  EXPECT_EQ(points.size(), 25u);  // 10..240, then 250 again
  ExpectIncreasingSteps(stored.series());
  stored.Add(5);  // a restart from scratch
  EXPECT_EQ(stored.series().points().size(), 1u);
  EXPECT_EQ(stored.stored(), std::set<int64_t>({5}));
}

TEST(DownsampledSeriesTest, ContinuesARestoredSeriesWhereItStopped) {
  StoredSeries before(8);
  for (int64_t step = 1; step <= 50; ++step) before.Add(step);
  DownsampledSeries restored(8);
  restored.Restore(before.series().points(), before.series().stride());
  DownsampledSeries::Change change = restored.Add(51);
  EXPECT_EQ(change.index, 50) << "the index after the stored ones";
  EXPECT_EQ(restored.points().front().step, 1);
  EXPECT_EQ(restored.points().back().step, 51);
  EXPECT_LE(restored.points().size(), 8u);
}

}  // namespace
}  // namespace sae::controller
