// When an activation server under a controller keeps its server across an assignment, and
// when it must start afresh (CanKeepServing).
#include "services/activation_server/worker_mode.h"

#include <gtest/gtest.h>

namespace sae::activation_server {
namespace {

data::ShardCursor Cursor(uint64_t epoch, uint64_t offset, uint64_t served) {
  data::ShardCursor cursor;
  cursor.shard_index = 1;
  cursor.shard_count = 2;
  cursor.dataset_fingerprint = 0x5eed;
  cursor.epoch = epoch;
  cursor.offset = offset;
  cursor.contexts_served = served;
  return cursor;
}

ServedShard Served() { return ServedShard{"run-a", 1, 2, "hook_point: blocks.1.hook_resid_pre\n"}; }

v1::Assignment Next(const std::string& cursor_bytes) {
  v1::Assignment next;
  next.set_run_id("run-a");
  next.set_shard_index(1);
  next.set_shard_count(2);
  next.set_config_yaml("hook_point: blocks.1.hook_resid_pre\n");
  next.set_generation(1);
  next.set_shard_cursor(cursor_bytes);
  return next;
}

TEST(CanKeepServingTest, TheSameShardAtOrBehindTheFrontierKeepsTheServer) {
  const data::ShardCursor frontier = Cursor(0, 5000, 300);
  // No cursor reported yet, the frontier itself, and an older report of this server's.
  EXPECT_TRUE(CanKeepServing(Served(), frontier, Next("")));
  EXPECT_TRUE(CanKeepServing(Served(), frontier, Next(frontier.ToBytes())));
  EXPECT_TRUE(CanKeepServing(Served(), frontier, Next(Cursor(0, 4000, 250).ToBytes())));
}

TEST(CanKeepServingTest, ACursorBeyondTheFrontierStartsAfresh) {
  // Another server served this shard further while this one was away: keeping this server
  // would serve those activations again.
  const data::ShardCursor frontier = Cursor(0, 5000, 300);
  EXPECT_FALSE(CanKeepServing(Served(), frontier, Next(Cursor(0, 9000, 500).ToBytes())));
  EXPECT_FALSE(CanKeepServing(Served(), frontier, Next(Cursor(1, 10, 4000).ToBytes())));
}

TEST(CanKeepServingTest, AnUnreadableCursorStartsAfresh) {
  EXPECT_FALSE(CanKeepServing(Served(), Cursor(0, 5000, 300), Next("\xff garbage")));
}

TEST(CanKeepServingTest, AnotherRunShardOrConfigStartsAfresh) {
  const data::ShardCursor frontier = Cursor(0, 5000, 300);
  v1::Assignment other_run = Next("");
  other_run.set_run_id("run-b");
  EXPECT_FALSE(CanKeepServing(Served(), frontier, other_run));
  v1::Assignment other_shard = Next("");
  other_shard.set_shard_index(0);
  EXPECT_FALSE(CanKeepServing(Served(), frontier, other_shard));
  v1::Assignment other_split = Next("");
  other_split.set_shard_count(4);
  EXPECT_FALSE(CanKeepServing(Served(), frontier, other_split));
  v1::Assignment other_config = Next("");
  other_config.set_config_yaml("hook_point: blocks.0.hook_resid_pre\n");
  EXPECT_FALSE(CanKeepServing(Served(), frontier, other_config));
}

}  // namespace
}  // namespace sae::activation_server
