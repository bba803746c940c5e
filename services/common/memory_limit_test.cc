#include "services/common/memory_limit.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::service {
namespace {

TEST(MemoryLimitTest, ParsesSizesWithBinaryAndDecimalUnits) {
  EXPECT_EQ(*ParseByteSize("2000000000", "--memory-limit"), 2000000000);
  EXPECT_EQ(*ParseByteSize("8GiB", "--memory-limit"), int64_t{8} << 30);
  EXPECT_EQ(*ParseByteSize("512MiB", "--memory-limit"), int64_t{512} << 20);
  EXPECT_EQ(*ParseByteSize("1.5G", "--memory-limit"), 1500000000);
  EXPECT_EQ(*ParseByteSize(" 64 kb ", "--memory-limit"), 64000);
  for (const char* bad : {"", "GiB", "-1G", "0", "8 parsecs", "1e3", "99999999TiB"}) {
    absl::StatusOr<int64_t> parsed = ParseByteSize(bad, "--memory-limit");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(), testing::HasSubstr("--memory-limit"));
    EXPECT_THAT(parsed.status().message(), testing::HasSubstr("e.g. 8GiB"));
  }
}

TEST(MemoryLimitTest, ReadsMemAvailableAndTheCgroupsRoom) {
  EXPECT_EQ(MemAvailableFromMeminfo("MemTotal:       24000000 kB\nMemFree:  100 kB\n"
                                    "MemAvailable:   20000000 kB\nBuffers: 1 kB\n"),
            int64_t{20000000} * 1024);
  EXPECT_FALSE(MemAvailableFromMeminfo("MemTotal: 1 kB\n").has_value());
  EXPECT_EQ(CgroupRoomFromFiles("1073741824\n", "73741824\n"), 1000000000);
  EXPECT_EQ(CgroupRoomFromFiles("100\n", "200\n"), 0);
  EXPECT_FALSE(CgroupRoomFromFiles("max\n", "5\n").has_value());
  EXPECT_FALSE(CgroupRoomFromFiles("", "").has_value());
  // This machine: /proc/meminfo is there, so something positive is found.
  EXPECT_GT(AvailableMemoryBytes(), 0);
}

}  // namespace
}  // namespace sae::service
