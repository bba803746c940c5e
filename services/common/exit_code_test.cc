#include "services/common/exit_code.h"

#include "gtest/gtest.h"

namespace sae::service {
namespace {

TEST(ExitCodeTest, MapsEveryBinarysOutcomeTheSameWay) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeFor(absl::InvalidArgumentError("bad key")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("no file")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("wrong width")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::OutOfRangeError("dataset too short")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::AlreadyExistsError("run exists")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(absl::CancelledError("stopped")), kExitStopped);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("timed out")), kExitStopped);
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError("peer gone")), kExitFailure);
  EXPECT_EQ(ExitCodeFor(absl::InternalError("bug")), kExitFailure);
}

TEST(IsUsersMistakeTest, IsTrueExactlyForWhatARestartWouldRepeat) {
  EXPECT_TRUE(IsUsersMistake(absl::InvalidArgumentError("")));
  EXPECT_TRUE(IsUsersMistake(absl::NotFoundError("")));
  EXPECT_FALSE(IsUsersMistake(absl::UnavailableError("")));
  EXPECT_FALSE(IsUsersMistake(absl::DeadlineExceededError("")));
  EXPECT_FALSE(IsUsersMistake(absl::CancelledError("")));
  EXPECT_FALSE(IsUsersMistake(absl::OkStatus()));
}

}  // namespace
}  // namespace sae::service
