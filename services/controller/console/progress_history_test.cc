#include "services/controller/console/progress_history.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

v1::TrainingMetrics Report(int64_t step) {
  v1::TrainingMetrics metrics;
  metrics.set_step(step);
  metrics.set_tokens(step * 64);
  metrics.set_l0(100.0 / static_cast<double>(step));
  if (step % 10 == 0) metrics.set_mean_log10_feature_sparsity(-3.5);
  return metrics;
}

TEST(ProgressHistoryTest, SurvivesAReopenedStoreAndContinuesTheSameSeries) {
  support::TempDir folder;
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  {
    auto store = RunStore::Open(folder.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ProgressHistory history(store->get(), 16);
    for (int64_t step = 1; step <= 100; ++step) {
      ASSERT_TRUE(history.Record("run-a", 0, Report(step), t0 + absl::Seconds(step)).ok());
    }
    ASSERT_TRUE(history.Record("run-b", 2, Report(7), t0).ok());
  }
  auto store = RunStore::Open(folder.path());
  ASSERT_TRUE(store.ok()) << store.status();
  ProgressHistory history(store->get(), 16);
  auto points = history.Read("run-a");
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_LE(points->size(), 16u);
  ASSERT_GE(points->size(), 8u);
  EXPECT_EQ(points->front().metrics().step(), 1);
  EXPECT_EQ(points->back().metrics().step(), 100);
  EXPECT_EQ(points->back().time_unix_ms(), absl::ToUnixMillis(t0 + absl::Seconds(100)));
  EXPECT_DOUBLE_EQ(points->back().metrics().l0(), 1.0);
  EXPECT_TRUE(points->back().metrics().has_mean_log10_feature_sparsity());

  for (int64_t step = 101; step <= 400; ++step) {
    ASSERT_TRUE(history.Record("run-a", 1, Report(step), t0).ok());
  }
  points = history.Read("run-a");
  ASSERT_TRUE(points.ok());
  EXPECT_LE(points->size(), 16u);
  EXPECT_EQ(points->front().metrics().step(), 1);
  EXPECT_EQ(points->back().metrics().step(), 400);
  EXPECT_EQ(points->back().generation(), 1u);
  for (size_t i = 1; i < points->size(); ++i) {
    EXPECT_LT((*points)[i - 1].metrics().step(), (*points)[i].metrics().step());
  }
  // What the history serves from memory is what the store holds.
  ProgressHistory reread(store->get(), 16);
  auto stored = reread.Read("run-a");
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), points->size());
  for (size_t i = 0; i < points->size(); ++i) {
    EXPECT_EQ((*stored)[i].SerializeAsString(), (*points)[i].SerializeAsString()) << i;
  }
  auto other = history.Read("run-b");
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->size(), 1u) << "runs do not mix";
  EXPECT_EQ(other->front().generation(), 2u);
}

TEST(ProgressHistoryTest, GoesWithItsDeletedRun) {
  support::TempDir folder;
  auto store = RunStore::Open(folder.path());
  ASSERT_TRUE(store.ok());
  ProgressHistory history(store->get());
  ASSERT_TRUE(history.Record("gone", 0, Report(1), absl::Now()).ok());
  ASSERT_TRUE((*store)->DeleteRun("gone").ok());
  auto points = ProgressHistory(store->get()).Read("gone");
  ASSERT_TRUE(points.ok());
  EXPECT_TRUE(points->empty());
}

}  // namespace
}  // namespace sae::controller
