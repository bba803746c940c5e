#include "core/wire/cursor_text.h"

#include <gtest/gtest.h>

namespace sae::wire {
namespace {

TEST(CursorTextTest, RoundTripsACursorThroughHex) {
  data::ShardCursor cursor;
  cursor.shard_index = 1;
  cursor.shard_count = 3;
  cursor.dataset_fingerprint = 0x1234567890abcdefULL;
  cursor.epoch = 2;
  cursor.file_index = 4;
  cursor.offset = 123456;
  cursor.tokens_into_document = 17;
  cursor.contexts_served = 999;
  const std::string hex = CursorToHex(cursor);
  EXPECT_EQ(hex.find_first_not_of("0123456789abcdef"), std::string::npos) << hex;
  auto back = CursorFromHex("  " + hex + "\n");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, cursor);
}

TEST(CursorTextTest, RejectsTextThatIsNotACursor) {
  EXPECT_EQ(CursorFromHex("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CursorFromHex("abc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CursorFromHex("zz").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CursorFromHex("ff00").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sae::wire
