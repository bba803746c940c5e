#include "core/metrics/text_format.h"

#include <limits>
#include <string>
#include <vector>

#include "core/metrics/registry.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"

namespace sae::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(TextFormatTest, EscapesBackslashAndNewlineInHelp) {
  EXPECT_EQ(EscapeHelp("a\\b\nc \"quoted\""), "a\\\\b\\nc \"quoted\"");
}

TEST(TextFormatTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(ReplaceInvalidUtf8("caf\xC3\xA9 \xE2\x9C\x93"), "caf\xC3\xA9 \xE2\x9C\x93");
  EXPECT_EQ(ReplaceInvalidUtf8("a\xFF"
                               "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ReplaceInvalidUtf8("\xC3"), "\xEF\xBF\xBD");                  // Truncated sequence.
  EXPECT_EQ(ReplaceInvalidUtf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // Overlong '/'.
  EXPECT_EQ(EscapeHelp("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // Surrogate.
  // Label values are left to TextSerializer to escape.
  EXPECT_EQ(ReplaceInvalidUtf8("C:\\runs\n\"x\""), "C:\\runs\n\"x\"");
}

// The exposition is prometheus-cpp's: the same families built by hand as prometheus::MetricFamily
// and serialized by prometheus::TextSerializer give the same bytes.
TEST(TextFormatTest, IsWhatPrometheusCppsTextSerializerWrites) {
  Registry registry;
  Family<Counter>* tokens =
      *registry.AddCounter("sae_tokens_total", "Tokens trained.", {"run_id", "rank"});
  Family<Histogram>* step = *registry.AddHistogram("sae_step_seconds", "Step time.", {}, {0.5, 1});
  tokens->Labels({"run-1", "0"}).Increment(3);
  step->Labels().Observe(0.75);

  prometheus::Counter counter;
  counter.Increment(3);
  prometheus::ClientMetric counter_metric = counter.Collect();
  counter_metric.label = {{"run_id", "run-1"}, {"rank", "0"}};
  prometheus::Histogram histogram({0.5, 1});
  histogram.Observe(0.75);
  std::vector<prometheus::MetricFamily> by_hand = {
      {"sae_step_seconds", "Step time.", prometheus::MetricType::Histogram, {histogram.Collect()}},
      {"sae_tokens_total", "Tokens trained.", prometheus::MetricType::Counter, {counter_metric}},
  };
  const std::string expected = prometheus::TextSerializer().Serialize(by_hand);
  EXPECT_EQ(FormatText(registry.Collect()), expected);
  EXPECT_EQ(expected,
            "# HELP sae_step_seconds Step time.\n"
            "# TYPE sae_step_seconds histogram\n"
            "sae_step_seconds_count 1\n"
            "sae_step_seconds_sum 0.75\n"
            "sae_step_seconds_bucket{le=\"0.5\"} 0\n"
            "sae_step_seconds_bucket{le=\"1\"} 1\n"
            "sae_step_seconds_bucket{le=\"+Inf\"} 1\n"
            "# HELP sae_tokens_total Tokens trained.\n"
            "# TYPE sae_tokens_total counter\n"
            "sae_tokens_total{run_id=\"run-1\",rank=\"0\"} 3\n");
}

// TextSerializer writes 16 significant digits: integers without exponent up to 10^16, fractions
// as short as they print at that precision (which may drop the 17th digit some doubles need).
TEST(TextFormatTest, WritesValuesWithSixteenSignificantDigits) {
  Registry registry;
  Family<Gauge>* gauge = *registry.AddGauge("sae_v", "Values.", {"k"});
  gauge->Labels({"a"}).Set(0);
  gauge->Labels({"b"}).Set(-7);
  gauge->Labels({"c"}).Set(1e6);
  gauge->Labels({"d"}).Set(1712345678);
  gauge->Labels({"e"}).Set(0.1);
  gauge->Labels({"f"}).Set(2.5e-7);
  gauge->Labels({"g"}).Set(1e300);
  gauge->Labels({"h"}).Set(1712345678.25);
  gauge->Labels({"i"}).Set(0.1 + 0.2);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_v Values.\n"
            "# TYPE sae_v gauge\n"
            "sae_v{k=\"a\"} 0\n"
            "sae_v{k=\"b\"} -7\n"
            "sae_v{k=\"c\"} 1000000\n"
            "sae_v{k=\"d\"} 1712345678\n"
            "sae_v{k=\"e\"} 0.1\n"
            "sae_v{k=\"f\"} 2.5e-07\n"
            "sae_v{k=\"g\"} 1e+300\n"
            "sae_v{k=\"h\"} 1712345678.25\n"
            "sae_v{k=\"i\"} 0.3\n");
}

TEST(TextFormatTest, ReplacesInvalidUtf8InHelpAndLabelValuesOfTheExposition) {
  Registry registry;
  Family<Gauge>* gauge = *registry.AddGauge("sae_u", "Bad \xFF byte.", {"run_id"});
  gauge->Labels({"r\xC3"}).Set(1);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_u Bad \xEF\xBF\xBD byte.\n"
            "# TYPE sae_u gauge\n"
            "sae_u{run_id=\"r\xEF\xBF\xBD\"} 1\n");
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
            "sae_y_seconds_count{run_id=\"run-1\"} 1\n"
            "sae_y_seconds_sum{run_id=\"run-1\"} 0.5\n"
            "sae_y_seconds_bucket{run_id=\"run-1\",le=\"1\"} 1\n"
            "sae_y_seconds_bucket{run_id=\"run-1\",le=\"+Inf\"} 1\n");
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
            "sae_train_step_duration_seconds_count{run_id=\"run-1\"} 4\n"
            "sae_train_step_duration_seconds_sum{run_id=\"run-1\"} 2.5625\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"0.125\"} 2\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"0.5\"} 3\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"1\"} 3\n"
            "sae_train_step_duration_seconds_bucket{run_id=\"run-1\",le=\"+Inf\"} 4\n"
            "# HELP sae_wait_seconds Wait for data.\n"
            "# TYPE sae_wait_seconds histogram\n"
            "sae_wait_seconds_count 1\n"
            "sae_wait_seconds_sum 0.5\n"
            "sae_wait_seconds_bucket{le=\"1\"} 1\n"
            "sae_wait_seconds_bucket{le=\"+Inf\"} 1\n");
}

// "Nan" is how prometheus-cpp spells it; Prometheus parses floats with Go's strconv.ParseFloat,
// which takes any case ("NaN", "nan", "Nan").
TEST(TextFormatTest, WritesNanAndInfinitiesAsSampleValues) {
  Registry registry;
  Family<Gauge>* loss = *registry.AddGauge("sae_train_loss", "Overall loss.", {"run_id"});
  loss->Labels({"a"}).Set(kNaN);
  loss->Labels({"b"}).Set(kInf);
  loss->Labels({"c"}).Set(-kInf);
  EXPECT_EQ(FormatText(registry.Collect()),
            "# HELP sae_train_loss Overall loss.\n"
            "# TYPE sae_train_loss gauge\n"
            "sae_train_loss{run_id=\"a\"} Nan\n"
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
            "sae_x_seconds_count 1\n"
            "sae_x_seconds_sum 3\n"
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
            "sae_x_seconds_bucket{le=\"+Inf\"} 1\n");
}

}  // namespace
}  // namespace sae::metrics
