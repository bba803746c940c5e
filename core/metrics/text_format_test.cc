#include "core/metrics/text_format.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/metrics/registry.h"
#include "gtest/gtest.h"

namespace sae::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(FormatValueTest, WritesInfinitiesAndNanAsPrometheusSpellsThem) {
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(kNaN), "NaN");
}

TEST(FormatValueTest, WritesIntegersWithoutExponentOrFraction) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(-7), "-7");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(1712345678), "1712345678");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");  // 2^53 - 1
}

TEST(FormatValueTest, WritesFractionsInTheShortestFormThatRoundTrips) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(2.5e-7), "2.5e-07");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  for (double value : {0.1 + 0.2, 1.0 / 3.0, 123456.789, 6.02214076e23, 5e-324,
                       std::numeric_limits<double>::max(), -1e-10}) {
    EXPECT_EQ(std::strtod(FormatValue(value).c_str(), nullptr), value) << FormatValue(value);
  }
}

TEST(TextFormatTest, EscapesBackslashAndNewlineInHelp) {
  EXPECT_EQ(EscapeHelp("a\\b\nc \"quoted\""), "a\\\\b\\nc \"quoted\"");
}

TEST(TextFormatTest, EscapesBackslashQuoteAndNewlineInLabelValues) {
  EXPECT_EQ(EscapeLabelValue("C:\\runs\n\"x\""), "C:\\\\runs\\n\\\"x\\\"");
}

TEST(TextFormatTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(EscapeLabelValue("caf\xC3\xA9 \xE2\x9C\x93"), "caf\xC3\xA9 \xE2\x9C\x93");
  EXPECT_EQ(EscapeLabelValue("a\xFF"
                             "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(EscapeLabelValue("\xC3"), "\xEF\xBF\xBD");                  // Truncated sequence.
  EXPECT_EQ(EscapeLabelValue("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // Overlong '/'.
  EXPECT_EQ(EscapeHelp("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // Surrogate.
}

TEST(TextFormatTest, WritesCountersAndGaugesWithLabels) {
  Registry registry;
  Family<Counter>* tokens = *registry.AddCounter(
      "sae_train_tokens_total", "Tokens trained, counted in global tokens.", {"run_id", "rank"});
  Family<Gauge>* l0 = *registry.AddGauge(
      "sae_train_l0", "Mean number of active features per token.", {"run_id", "rank"});
  Family<Gauge>* fill = *registry.AddGauge("sae_buffer_fill_ratio", "Mixing buffer fill.", {});
  tokens->Labels({"run-1", "1"}).Increment(4096);
  tokens->Labels({"run-1", "0"}).Increment(8192);
  l0->Labels({"run-1", "0"}).Set(3.5);
  fill->Labels().Set(0.75);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_buffer_fill_ratio Mixing buffer fill.\n"
            "# TYPE sae_buffer_fill_ratio gauge\n"
            "sae_buffer_fill_ratio 0.75\n"
            "# HELP sae_train_l0 Mean number of active features per token.\n"
            "# TYPE sae_train_l0 gauge\n"
            "sae_train_l0{run_id=\"run-1\",rank=\"0\"} 3.5\n"
            "# HELP sae_train_tokens_total Tokens trained, counted in global tokens.\n"
            "# TYPE sae_train_tokens_total counter\n"
            "sae_train_tokens_total{run_id=\"run-1\",rank=\"0\"} 8192\n"
            "sae_train_tokens_total{run_id=\"run-1\",rank=\"1\"} 4096\n");
}

// Prometheus reads an empty label as an absent one: the `sae` label of a run of one SAE
// (core/training/training_metrics.h) stays out of its series, histogram buckets included.
TEST(TextFormatTest, LeavesOutLabelsWhoseValueIsEmpty) {
  Registry registry;
  Family<Gauge>* l0 = *registry.AddGauge("sae_train_l0", "Mean active features per token.",
                                         {"run_id", "rank", "sae"});
  l0->Labels({"run-1", "0", ""}).Set(3.5);
  l0->Labels({"run-2", "0", "blocks.1.hook_resid_pre/l1=8e-05"}).Set(2);
  Family<Gauge>* none = *registry.AddGauge("sae_x", "All labels empty.", {"sae"});
  none->Labels({""}).Set(1);
  Family<Histogram>* step =
      *registry.AddHistogram("sae_y_seconds", "Histogram.", {"run_id", "sae"}, {1});
  step->Labels({"run-1", ""}).Observe(0.5);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_train_l0 Mean active features per token.\n"
            "# TYPE sae_train_l0 gauge\n"
            "sae_train_l0{run_id=\"run-1\",rank=\"0\"} 3.5\n"
            "sae_train_l0{run_id=\"run-2\",rank=\"0\","
            "sae=\"blocks.1.hook_resid_pre/l1=8e-05\"} 2\n"
            "# HELP sae_x All labels empty.\n"
            "# TYPE sae_x gauge\n"
            "sae_x 1\n"
            "# HELP sae_y_seconds Histogram.\n"
            "# TYPE sae_y_seconds histogram\n"
            "sae_y_seconds_bucket{run_id=\"run-1\",le=\"1\"} 1\n"
            "sae_y_seconds_bucket{run_id=\"run-1\",le=\"+Inf\"} 1\n"
            "sae_y_seconds_sum{run_id=\"run-1\"} 0.5\n"
            "sae_y_seconds_count{run_id=\"run-1\"} 1\n");
}

TEST(TextFormatTest, WritesHistogramsWithCumulativeBucketsInfSumAndCount) {
  Registry registry;
  Family<Histogram>* step = *registry.AddHistogram(
      "sae_train_step_duration_seconds", "Time of one training step.", {"run_id"}, {0.125, 0.5, 1});
  Histogram& run = step->Labels({"run-1"});
  run.Observe(0.0625);
  run.Observe(0.125);  // On a bound: counted in that bucket.
  run.Observe(0.375);
  run.Observe(2);
  Family<Histogram>* unlabelled =
      *registry.AddHistogram("sae_wait_seconds", "Wait for data.", {}, {1});
  unlabelled->Labels().Observe(0.5);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_train_step_duration_seconds Time of one training step.\n"
            "# TYPE sae_train_step_duration_seconds histogram\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"0.125\"} 2\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"0.5\"} 3\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"1\"} 3\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"+Inf\"} 4\n"
            "sae_train_step_duration_seconds_sum{run_id=\"run-1\"} 2.5625\n"
            "sae_train_step_duration_seconds_count{run_id=\"run-1\"} 4\n"
            "# HELP sae_wait_seconds Wait for data.\n"
            "# TYPE sae_wait_seconds histogram\n"
            "sae_wait_seconds_bucket{le=\"1\"} 1\n"
            "sae_wait_seconds_bucket{le=\"+Inf\"} 1\n"
            "sae_wait_seconds_sum 0.5\n"
            "sae_wait_seconds_count 1\n");
}

TEST(TextFormatTest, WritesNanAndInfinitiesAsSampleValues) {
  Registry registry;
  Family<Gauge>* loss = *registry.AddGauge("sae_train_loss", "Overall loss.", {"run_id"});
  loss->Labels({"a"}).Set(kNaN);
  loss->Labels({"b"}).Set(kInf);
  loss->Labels({"c"}).Set(-kInf);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_train_loss Overall loss.\n"
            "# TYPE sae_train_loss gauge\n"
            "sae_train_loss{run_id=\"a\"} NaN\n"
            "sae_train_loss{run_id=\"b\"} +Inf\n"
            "sae_train_loss{run_id=\"c\"} -Inf\n");
}

TEST(TextFormatTest, EscapesHelpAndLabelValuesInTheExposition) {
  Registry registry;
  Family<Gauge>* gauge =
      *registry.AddGauge("sae_odd", "Path like C:\\runs\nsecond line.", {"run_id"});
  gauge->Labels({"say \"hi\"\\\n"}).Set(1);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_odd Path like C:\\\\runs\\nsecond line.\n"
            "# TYPE sae_odd gauge\n"
            "sae_odd{run_id=\"say \\\"hi\\\"\\\\\\n\"} 1\n");
}

TEST(TextFormatTest, WritesHelpAndTypeForAFamilyWithNoChildren) {
  Registry registry;
  ASSERT_TRUE(registry.AddCounter("sae_reconnects_total", "Stream reconnects.", {"server"}).ok());
  ASSERT_TRUE(
      registry.AddHistogram("sae_allreduce_duration_seconds", "All-reduce time.", {"rank"}).ok());
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_allreduce_duration_seconds All-reduce time.\n"
            "# TYPE sae_allreduce_duration_seconds histogram\n"
            "# HELP sae_reconnects_total Stream reconnects.\n"
            "# TYPE sae_reconnects_total counter\n");
}

TEST(TextFormatTest, WritesDefaultBucketBoundsWithoutExponents) {
  Registry registry;
  (*registry.AddHistogram("sae_x_seconds", "X.", {}))->Labels().Observe(3);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_x_seconds X.\n"
            "# TYPE sae_x_seconds histogram\n"
            "sae_x_seconds_bucket{le=\"0.005\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.01\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.025\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.05\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.1\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.25\"} 0\n"
            "sae_x_seconds_bucket{le=\"0.5\"} 0\n"
            "sae_x_seconds_bucket{le=\"1\"} 0\n"
            "sae_x_seconds_bucket{le=\"2.5\"} 0\n"
            "sae_x_seconds_bucket{le=\"5\"} 1\n"
            "sae_x_seconds_bucket{le=\"10\"} 1\n"
            "sae_x_seconds_bucket{le=\"+Inf\"} 1\n"
            "sae_x_seconds_sum 3\n"
            "sae_x_seconds_count 1\n");
}

}  // namespace
}  // namespace sae::metrics
