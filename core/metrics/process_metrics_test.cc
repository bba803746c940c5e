#include "core/metrics/process_metrics.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sae::metrics {
namespace {

// Unlabelled values by family name.
std::map<std::string, double> CollectValues(Registry* registry) {
  std::map<std::string, double> values;
  for (const FamilySnapshot& family : registry->Collect()) {
    if (family.metric.size() != 1) continue;
    const prometheus::ClientMetric& metric = family.metric[0];
    values[family.name] =
        family.type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
  }
  return values;
}

TEST(ProcessMetricsTest, ReportsMemoryFileDescriptorsAndStartTime) {
  Registry registry;
  ASSERT_TRUE(AddProcessMetrics(&registry).ok());
  std::map<std::string, double> values = CollectValues(&registry);
  EXPECT_GT(values["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GT(values["process_virtual_memory_bytes"], values["process_resident_memory_bytes"]);
  EXPECT_GE(values["process_open_fds"], 3);
  EXPECT_GE(values["process_max_fds"], values["process_open_fds"]);
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // This test binary started moments ago; /proc's figures are in whole seconds and clock ticks.
  EXPECT_LT(values["process_start_time_seconds"], now + 2);
  EXPECT_GT(values["process_start_time_seconds"], now - 600);
}

TEST(ProcessMetricsTest, SaysWhichBuildThisIs) {
  Registry registry;
  ASSERT_TRUE(AddProcessMetrics(&registry).ok());
  bool found = false;
  for (const FamilySnapshot& family : registry.Collect()) {
    if (family.name != "sae_build_info") continue;
    ASSERT_EQ(family.metric.size(), 1u);
    EXPECT_EQ(family.metric[0].gauge.value, 1);
    const std::vector<prometheus::ClientMetric::Label>& labels = family.metric[0].label;
    ASSERT_EQ(labels.size(), 2u);
    // The project's version from CMake's project() (x.y.z), and a git revision or "unknown".
    EXPECT_EQ(labels[0].name, "version");
    EXPECT_EQ(labels[0].value, SAE_TEST_VERSION);
    EXPECT_EQ(labels[1].name, "revision");
    EXPECT_FALSE(labels[1].value.empty());
    found = true;
  }
  EXPECT_TRUE(found);
}

// CPU time of the whole process, as the kernel counts it.
double ProcessCpuSeconds() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

TEST(ProcessMetricsTest, CountsCpuTimeAsItIsSpent) {
  Registry registry;
  ASSERT_TRUE(AddProcessMetrics(&registry).ok());
  // /proc/self/stat counts user and system time in whole clock ticks, each rounded down.
  const double tick = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double cpu_before = ProcessCpuSeconds();
  const double before = CollectValues(&registry)["process_cpu_seconds_total"];
  const double cpu_after = ProcessCpuSeconds();
  EXPECT_GE(before, cpu_before - 2 * tick);
  EXPECT_LE(before, cpu_after + 1e-6);
  // Spend CPU time (counted by the kernel, not by the wall clock, so a busy machine only makes
  // it take longer), then the counter has grown by about as much.
  volatile double sink = 0;
  while (ProcessCpuSeconds() < cpu_after + 0.2) sink = sink + 1;
  const double cpu_spun = ProcessCpuSeconds();
  const double after = CollectValues(&registry)["process_cpu_seconds_total"];
  EXPECT_GE(after, cpu_spun - 2 * tick);
  EXPECT_GT(after, before);
}

}  // namespace
}  // namespace sae::metrics
