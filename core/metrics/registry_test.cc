#include "core/metrics/registry.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/metrics/names.h"
#include "core/metrics/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// A child's exported label values, in the family's label order.
std::vector<std::string> LabelValues(const prometheus::ClientMetric& metric) {
  std::vector<std::string> values;
  for (const prometheus::ClientMetric::Label& label : metric.label) values.push_back(label.value);
  return values;
}

MATCHER_P2(IsErrorWith, code, substring, "") {
  return arg.status().code() == code &&
         std::string(arg.status().message()).find(substring) != std::string::npos;
}

TEST(MetricNamesTest, AcceptsPrometheusNamesAndRejectsOthers) {
  EXPECT_TRUE(ValidateMetricName("sae_train_l0").ok());
  EXPECT_TRUE(ValidateMetricName("job:sae_tokens:rate5m").ok());
  EXPECT_TRUE(ValidateMetricName("_x9").ok());
  for (const char* bad : {"", "9lives", "sae-train", "sae train", "sae.l0", "séance"}) {
    absl::Status status = ValidateMetricName(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(status.message(), HasSubstr("[a-zA-Z_:][a-zA-Z0-9_:]*")) << bad;
  }
}

TEST(LabelNamesTest, RejectColonsAndTheReservedDoubleUnderscorePrefix) {
  EXPECT_TRUE(ValidateLabelName("run_id").ok());
  EXPECT_TRUE(ValidateLabelName("_private").ok());
  EXPECT_EQ(ValidateLabelName("a:b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateLabelName("0rank").code(), absl::StatusCode::kInvalidArgument);
  absl::Status reserved = ValidateLabelName("__name__");
  EXPECT_EQ(reserved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reserved.message(), HasSubstr("reserved"));
}

TEST(RegistryTest, RejectsInvalidNamesWithAMessageNamingThem) {
  Registry registry;
  EXPECT_THAT(registry.AddGauge("sae-l0", "L0.", {}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "\"sae-l0\""));
  EXPECT_THAT(
      registry.AddGauge("sae_l0", "L0.", {"run-id"}),
      IsErrorWith(absl::StatusCode::kInvalidArgument, "metric sae_l0: label name \"run-id\""));
  EXPECT_THAT(registry.AddGauge("sae_l0", "L0.", {"__run"}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "reserved"));
  EXPECT_THAT(registry.AddGauge("sae_l0", "L0.", {"rank", "rank"}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "\"rank\" appears twice"));
  EXPECT_THAT(registry.AddGauge("sae_l0", "", {}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "needs a help text"));
}

TEST(RegistryTest, ReservesLeForHistogramBuckets) {
  Registry registry;
  EXPECT_THAT(registry.AddHistogram("sae_step_duration_seconds", "Step time.", {"le"}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "reserved for histogram bucket"));
  EXPECT_THAT(registry.AddGauge("sae_fill_ratio", "Fill.", {"le"}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "reserved for histogram bucket"));
  EXPECT_THAT(registry.AddGauge("sae_fill_ratio", "Fill.", {"quantile"}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "reserved for summary"));
}

TEST(RegistryTest, RequiresTotalOnCountersAndOnlyOnCounters) {
  Registry registry;
  EXPECT_THAT(registry.AddCounter("sae_tokens", "Tokens.", {}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "must end in \"_total\""));
  EXPECT_THAT(registry.AddGauge("sae_tokens_total", "Tokens.", {}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "must not end in \"_total\""));
  EXPECT_TRUE(registry.AddCounter("sae_tokens_total", "Tokens.", {}).ok());
}

TEST(RegistryTest, ReservesHistogramSuffixesForHistograms) {
  Registry registry;
  for (const char* name : {"sae_step_bucket", "sae_step_sum", "sae_step_count"}) {
    EXPECT_THAT(registry.AddGauge(name, "Steps.", {}),
                IsErrorWith(absl::StatusCode::kInvalidArgument, "histograms use"))
        << name;
  }
}

TEST(RegistryTest, RejectsBucketBoundsThatDoNotIncrease) {
  Registry registry;
  EXPECT_THAT(registry.AddHistogram("sae_a_seconds", "A.", {}, {1, 1}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "strictly increasing"));
  EXPECT_THAT(registry.AddHistogram("sae_b_seconds", "B.", {}, {2, 1}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "strictly increasing"));
  EXPECT_THAT(registry.AddHistogram("sae_c_seconds", "C.", {}, {1, kNaN}),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "only the last bound may be +Inf"));
  EXPECT_THAT(registry.AddHistogram("sae_d_seconds", "D.", {}, ExponentialBuckets(1, 0.5, 3)),
              IsErrorWith(absl::StatusCode::kInvalidArgument, "strictly increasing"));
}

TEST(RegistryTest, DropsATrailingInfBucketBound) {
  Registry registry;
  absl::StatusOr<Family<Histogram>*> family =
      registry.AddHistogram("sae_wait_seconds", "Wait.", {}, {0.1, 1, kInf});
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_THAT((*family)->bucket_bounds(), ElementsAre(0.1, 1));
}

TEST(RegistryTest, ReturnsTheSameFamilyForAnIdenticalRegistration) {
  Registry registry;
  absl::StatusOr<Family<Gauge>*> first = registry.AddGauge("sae_l0", "L0.", {"run_id"});
  absl::StatusOr<Family<Gauge>*> second = registry.AddGauge("sae_l0", "L0.", {"run_id"});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
}

TEST(RegistryTest, RejectsASecondRegistrationThatDiffers) {
  Registry registry;
  ASSERT_TRUE(registry.AddGauge("sae_l0", "L0.", {"run_id"}).ok());
  EXPECT_THAT(registry.AddGauge("sae_l0", "L0.", {"run_id", "rank"}),
              IsErrorWith(absl::StatusCode::kAlreadyExists, "already registered as a gauge"));
  EXPECT_THAT(registry.AddGauge("sae_l0", "Other help.", {"run_id"}),
              IsErrorWith(absl::StatusCode::kAlreadyExists, "sae_l0"));
  EXPECT_THAT(registry.AddHistogram("sae_l0", "L0.", {"run_id"}),
              IsErrorWith(absl::StatusCode::kAlreadyExists, "sae_l0"));
}

TEST(RegistryTest, CollectsFamiliesSortedByNameAndChildrenByLabelValues) {
  Registry registry;
  Family<Gauge>* b = *registry.AddGauge("sae_b", "B.", {"rank"});
  Family<Gauge>* a = *registry.AddGauge("sae_a", "A.", {"rank"});
  b->Labels({"1"}).Set(1);
  b->Labels({"0"}).Set(0);
  a->Labels({"0"});
  std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_THAT(families, SizeIs(2));
  EXPECT_EQ(families[0].name, "sae_a");
  EXPECT_EQ(families[1].name, "sae_b");
  ASSERT_THAT(families[1].metric, SizeIs(2));
  EXPECT_THAT(LabelValues(families[1].metric[0]), ElementsAre("0"));
  EXPECT_THAT(LabelValues(families[1].metric[1]), ElementsAre("1"));
}

TEST(RegistryTest, ExportsAnUnlabelledFamilyAtZeroBeforeItsFirstUpdate) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("sae_restarts_total", "Restarts.", {}).ok());
  std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_THAT(families, SizeIs(1));
  ASSERT_THAT(families[0].metric, SizeIs(1));
  EXPECT_THAT(families[0].metric[0].label, IsEmpty());
  EXPECT_EQ(families[0].metric[0].counter.value, 0.0);
}

TEST(FamilyTest, ReturnsTheSameChildForTheSameLabelValues) {
  Registry registry;
  Family<Counter>* tokens = *registry.AddCounter("sae_tokens_total", "Tokens.", {"run_id"});
  tokens->Labels({"run-1"}).Increment(3);
  tokens->Labels({"run-1"}).Increment(4);
  EXPECT_EQ(&tokens->Labels({"run-1"}), &tokens->Labels({"run-1"}));
  EXPECT_EQ(tokens->Labels({"run-1"}).Value(), 7.0);
  EXPECT_EQ(tokens->Labels({"run-2"}).Value(), 0.0);
}

TEST(FamilyTest, RemovesAChildButKeepsReferencesToItValid) {
  Registry registry;
  Family<Gauge>* l0 = *registry.AddGauge("sae_l0", "L0.", {"run_id", "rank"});
  Gauge& ended = l0->Labels({"run-1", "0"});
  l0->Labels({"run-2", "0"}).Set(2);
  ended.Set(1);
  EXPECT_TRUE(l0->Remove({"run-1", "0"}));
  EXPECT_FALSE(l0->Remove({"run-1", "0"}));
  ended.Set(5);  // Still a live object, just no longer exported.
  FamilySnapshot snapshot = l0->Collect();
  ASSERT_THAT(snapshot.metric, SizeIs(1));
  EXPECT_THAT(LabelValues(snapshot.metric[0]), ElementsAre("run-2", "0"));
  EXPECT_EQ(l0->Labels({"run-1", "0"}).Value(), 0.0);  // A fresh child.
}

TEST(FamilyTest, RemovesEveryChildOfARun) {
  Registry registry;
  Family<Gauge>* l0 = *registry.AddGauge("sae_l0", "L0.", {"run_id", "rank"});
  l0->Labels({"run-1", "0"});
  l0->Labels({"run-1", "1"});
  l0->Labels({"run-2", "0"});
  EXPECT_EQ(l0->RemoveMatching("run_id", "run-1"), 2u);
  EXPECT_EQ(l0->RemoveMatching("server", "0"), 0u);
  FamilySnapshot snapshot = l0->Collect();
  ASSERT_THAT(snapshot.metric, SizeIs(1));
  EXPECT_THAT(LabelValues(snapshot.metric[0]), ElementsAre("run-2", "0"));
}

// prometheus::Family::Remove deletes the metric; ours keeps it alive. A reference taken before
// RemoveMatching still takes writes, which are not exported, and Labels() starts afresh.
TEST(FamilyTest, KeepsReferencesValidAfterRemoveMatching) {
  Registry registry;
  Family<Counter>* tokens = *registry.AddCounter("sae_tokens_total", "Tokens.", {"run_id"});
  Family<Histogram>* step = *registry.AddHistogram("sae_step_seconds", "Step.", {"run_id"}, {1});
  Counter& old_tokens = tokens->Labels({"run-1"});
  Histogram& old_step = step->Labels({"run-1"});
  old_tokens.Increment(5);
  old_step.Observe(0.5);
  ASSERT_EQ(tokens->RemoveMatching("run_id", "run-1"), 1u);
  ASSERT_EQ(step->RemoveMatching("run_id", "run-1"), 1u);
  old_tokens.Increment(7);  // Writes into the removed children: no crash...
  old_step.Observe(2);
  EXPECT_EQ(old_tokens.Value(), 12.0);
  EXPECT_EQ(old_step.Value().count, 2u);
  const std::string removed = FormatText(registry.Collect());
  EXPECT_THAT(removed, Not(HasSubstr("run-1")));  // ...and nothing exported.
  Counter& new_tokens = tokens->Labels({"run-1"});
  EXPECT_NE(&new_tokens, &old_tokens);
  EXPECT_EQ(new_tokens.Value(), 0.0);
  EXPECT_EQ(step->Labels({"run-1"}).Value().count, 0u);
  new_tokens.Increment(1);
  old_tokens.Increment(100);
  const std::string text = FormatText(registry.Collect());
  EXPECT_THAT(text, HasSubstr("sae_tokens_total{run_id=\"run-1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sae_step_seconds_count{run_id=\"run-1\"} 0\n"));
}

TEST(FamilyDeathTest, AbortsOnTheWrongNumberOfLabelValues) {
  Registry registry;
  Family<Gauge>* l0 = *registry.AddGauge("sae_l0", "L0.", {"run_id", "rank"});
  EXPECT_DEATH(l0->Labels({"run-1"}), "sae_l0 has 2 label names \\(run_id, rank\\)");
}

TEST(RegistryTest, RunsCollectorsBeforeEachCollect) {
  Registry registry;
  Gauge& scrapes = (*registry.AddGauge("sae_scrapes", "Scrapes.", {}))->Labels();
  registry.AddCollector([&scrapes] { scrapes.Increment(); });
  registry.Collect();
  std::vector<FamilySnapshot> families = registry.Collect();
  EXPECT_EQ(families[0].metric[0].gauge.value, 2.0);
}

TEST(RegistryTest, AllowsRegistrationAndUpdatesDuringConcurrentCollects) {
  Registry registry;
  Family<Counter>* tokens = *registry.AddCounter("sae_tokens_total", "Tokens.", {"rank"});
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 4; ++rank) {
    threads.emplace_back([&registry, tokens, rank] {
      Counter& mine = tokens->Labels({std::to_string(rank)});
      for (int i = 0; i < 20000; ++i) {
        mine.Increment();
        if (i % 5000 == 0) {
          ASSERT_TRUE(
              registry.AddGauge("sae_g" + std::to_string(rank * 100 + i / 5000), "G.", {}).ok());
        }
      }
    });
  }
  threads.emplace_back([&registry] {
    for (int i = 0; i < 50; ++i) registry.Collect();
  });
  for (std::thread& thread : threads) thread.join();
  std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_THAT(families, SizeIs(17));
  const FamilySnapshot& counters = families.back();
  ASSERT_EQ(counters.name, "sae_tokens_total");
  ASSERT_THAT(counters.metric, SizeIs(4));
  for (const prometheus::ClientMetric& child : counters.metric) {
    EXPECT_EQ(child.counter.value, 20000.0);
  }
}

}  // namespace
}  // namespace sae::metrics

namespace sae::metrics {
namespace {

TEST(LabelledSeriesTest, PutsEveryFamilysSeriesUnderTheSameLabels) {
  Registry registry;
  LabelledSeries run_a(registry, {"run_id", "rank"}, {"run-a", "0"});
  LabelledSeries run_b(registry, {"run_id", "rank"}, {"run-b", "1"});
  Counter* tokens_a = nullptr;
  Counter* tokens_b = nullptr;
  Gauge* loss = nullptr;
  Histogram* step = nullptr;
  ASSERT_TRUE(run_a.AddCounter("sae_tokens_total", "Tokens.", &tokens_a).ok());
  ASSERT_TRUE(run_b.AddCounter("sae_tokens_total", "Tokens.", &tokens_b).ok());
  ASSERT_TRUE(run_a.AddGauge("sae_loss", "Loss.", &loss).ok());
  ASSERT_TRUE(run_a.AddHistogram("sae_step_seconds", "Step.", {0.1, 1}, &step).ok());
  ASSERT_NE(tokens_a, tokens_b);
  tokens_a->Increment(3);
  tokens_b->Increment(5);
  loss->Set(0.25);
  step->Observe(0.5);
  std::vector<FamilySnapshot> families = registry.Collect();
  ASSERT_THAT(families, SizeIs(3));
  const std::string text = FormatText(families);
  EXPECT_THAT(text, HasSubstr("sae_tokens_total{run_id=\"run-a\",rank=\"0\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("sae_tokens_total{run_id=\"run-b\",rank=\"1\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("sae_loss{run_id=\"run-a\",rank=\"0\"} 0.25\n"));
  EXPECT_THAT(text, HasSubstr("sae_step_seconds_bucket{run_id=\"run-a\",rank=\"0\",le=\"1\"} 1\n"));
}

TEST(LabelledSeriesTest, PassesTheRegistrysErrorsOn) {
  Registry registry;
  LabelledSeries series(registry, {"run_id"}, {"run-a"});
  Counter* counter = nullptr;
  absl::Status status = series.AddCounter("sae_tokens", "Tokens.", &counter);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("_total"));
  EXPECT_EQ(counter, nullptr);
}

}  // namespace
}  // namespace sae::metrics
