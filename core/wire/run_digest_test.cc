#include "core/wire/run_digest.h"

#include <gtest/gtest.h>

namespace sae::wire {
namespace {

config::RunConfig Parse(const std::string& keys) {
  auto config = config::ParseRunConfig(
      "model_path: /models/gpt2\ndataset_path: /data/tokens.bin\n" + keys, "run.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TEST(RunConfigDigestTest, IsSixteenHexDigits) {
  std::string digest = RunConfigDigest(Parse("lr: 0.001\n"));
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(digest.find_first_not_of("0123456789abcdef"), std::string::npos) << digest;
}

TEST(RunConfigDigestTest, IgnoresHowTheConfigWasWritten) {
  EXPECT_EQ(RunConfigDigest(Parse("lr: 0.001\nseed: 7\n")),
            RunConfigDigest(Parse("# a comment\nseed: 7\n\nlr: 1e-3\n")));
}

TEST(RunConfigDigestTest, ChangesWhenAnyKeyChanges) {
  const std::string base = RunConfigDigest(Parse("lr: 0.001\n"));
  EXPECT_NE(base, RunConfigDigest(Parse("lr: 0.002\n")));
  EXPECT_NE(base, RunConfigDigest(Parse("lr: 0.001\nshuffle: false\n")));
  EXPECT_NE(base, RunConfigDigest(Parse("lr: 0.001\nwire_dtype: bfloat16\n")));
}

}  // namespace
}  // namespace sae::wire
