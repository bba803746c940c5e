#include "core/metrics/process_metrics.h"

#include <chrono>
#include <map>
#include <string>

#include "gtest/gtest.h"

namespace sae::metrics {
namespace {

// Unlabelled values by family name.
std::map<std::string, double> CollectValues(Registry* registry) {
  std::map<std::string, double> values;
  for (const FamilySnapshot& family : registry->Collect()) {
    if (family.children.size() == 1) values[family.name] = family.children[0].value;
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
    ASSERT_EQ(family.children.size(), 1u);
    EXPECT_EQ(family.children[0].value, 1);
    ASSERT_EQ(family.children[0].label_values.size(), 2u);
    // The project's version from CMake's project() (x.y.z), and a git revision or "unknown".
    EXPECT_EQ(family.children[0].label_values[0], SAE_TEST_VERSION);
    EXPECT_FALSE(family.children[0].label_values[1].empty());
    found = true;
  }
  EXPECT_TRUE(found);
}

TEST(ProcessMetricsTest, CountsCpuTimeAsItIsSpent) {
  Registry registry;
  ASSERT_TRUE(AddProcessMetrics(&registry).ok());
  double before = CollectValues(&registry)["process_cpu_seconds_total"];
  auto start = std::chrono::steady_clock::now();
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200)) sink += 1;
  double after = CollectValues(&registry)["process_cpu_seconds_total"];
  EXPECT_GE(before, 0.0);
  // On a busy shared machine this thread may get less than the wall time it spun.
  EXPECT_GT(after, before);
}

}  // namespace
}  // namespace sae::metrics
