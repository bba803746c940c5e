#include "services/common/host_port.h"

#include "gtest/gtest.h"

namespace sae::service {
namespace {

TEST(SplitHostPortTest, ReadsNamesIpv4AndBracketedIpv6) {
  absl::StatusOr<HostPort> name = SplitHostPort("trainer-0.local:29500", "x");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->host, "trainer-0.local");
  EXPECT_EQ(name->port, 29500);
  absl::StatusOr<HostPort> v6 = SplitHostPort("[::1]:80", "x");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->ToString(), "[::1]:80");
  EXPECT_FALSE(SplitHostPort("nohost", "x").ok());
  EXPECT_FALSE(SplitHostPort("h:99999", "x").ok());
}

TEST(SplitHostPortTest, NamesTheFlagAndTheTextInItsError) {
  absl::StatusOr<HostPort> bad = SplitHostPort("localhost", "--listen");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--listen \"localhost\""), absl::string_view::npos);
}

TEST(HostPortTest, KnowsWildcardHosts) {
  EXPECT_TRUE(SplitHostPort("0.0.0.0:7070", "x")->IsWildcard());
  EXPECT_TRUE(SplitHostPort("[::]:7070", "x")->IsWildcard());
  EXPECT_FALSE(SplitHostPort("127.0.0.1:7070", "x")->IsWildcard());
}

}  // namespace
}  // namespace sae::service
