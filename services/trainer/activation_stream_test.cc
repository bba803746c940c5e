// The trainer's side of the stream against a real activation server on a loopback port.
#include "services/trainer/activation_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "core/training/run_assets.h"
#include "core/wire/run_digest.h"
#include "services/activation_server/activation_server.h"
#include "support/child_process.h"
#include "support/ports.h"
#include "support/temp_dir.h"
#include "support/tiny_run.h"

namespace sae::trainer {
namespace {

using support::FreeLoopbackPort;
using support::TempDir;

TEST(PrefetchQueueTest, ReservesNoMoreThanTheDemandAndTheCapacity) {
  PrefetchQueue queue(/*capacity=*/4, /*demand=*/6);
  EXPECT_EQ(queue.Reserve(8), 4);  // the capacity
  for (int i = 0; i < 4; ++i) queue.Push(StreamedBatch{});
  ASSERT_TRUE(queue.Pop().ok());
  ASSERT_TRUE(queue.Pop().ok());
  EXPECT_EQ(queue.Reserve(8), 2);  // the rest of the demand
  queue.Release(1);                // one of them never came
  EXPECT_EQ(queue.reserved_total(), 5);
  EXPECT_EQ(queue.Reserve(8), 1);
  ASSERT_TRUE(queue.Pop().ok());
  ASSERT_TRUE(queue.Pop().ok());
  // The demand is met: a reader waits until it grows (resampling) or the queue closes.
  std::atomic<int> reserved{-1};
  std::thread reader([&] { reserved = queue.Reserve(8); });
  ASSERT_TRUE(
      support::Eventually([&] { return queue.waiting_readers() == 1; }, std::chrono::seconds(30)));
  EXPECT_EQ(reserved.load(), -1) << "Reserve returned although the demand was met";
  queue.AddDemand(1);
  reader.join();
  EXPECT_EQ(reserved.load(), 1);
  EXPECT_EQ(queue.waiting_readers(), 0);
  queue.Close();
  EXPECT_EQ(queue.Reserve(8), 0);
}

TEST(PrefetchQueueTest, HandsOverQueuedBatchesBeforeAReadersFailure) {
  PrefetchQueue queue(4, 4);
  ASSERT_EQ(queue.Reserve(1), 1);
  queue.Push(StreamedBatch{});
  queue.Fail(absl::UnavailableError("server gone"));
  EXPECT_TRUE(queue.Pop().ok());
  EXPECT_EQ(queue.Pop().status().code(), absl::StatusCode::kUnavailable);
}

class ActivationStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(support::WriteTinyRunFiles(dir_.path()).ok());
    config_ = support::ParseTinyRun(dir_.path());
    ASSERT_TRUE(training::ResolveRunConfig(config_).ok());
  }

  std::unique_ptr<activation_server::ActivationServer> StartServer(const std::string& listen) {
    activation_server::ActivationServerOptions options;
    options.config = config_;
    options.listen = listen;
    options.cursor_file = dir_.path() + "/shard0.cursor";
    options.max_batches_per_call = 4;
    auto server = activation_server::ActivationServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  ActivationStreamOptions Stream(const std::string& address) {
    ActivationStreamOptions o;
    o.address = address;
    o.run_id = wire::DefaultRunId(config_);
    o.config_digest = wire::RunConfigDigest(config_);
    o.session = "test-session";
    o.batch_size = config_.train_batch_size;
    o.d_in = *config_.d_in;
    o.lease = 2;
    o.initial_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(200);
    return o;
  }

  TempDir dir_;
  config::RunConfig config_;
};

TEST_F(ActivationStreamTest, ResumesAfterTheServerRestartsAndGetsEveryBatchItAskedFor) {
  const std::string address = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  auto server = StartServer(address);
  ASSERT_NE(server, nullptr);
  PrefetchQueue queue(4, 30);
  auto reader = ActivationStreamReader::Start(Stream(address), &queue, nullptr);
  ASSERT_TRUE(reader.ok()) << reader.status();

  std::set<std::pair<uint64_t, uint64_t>> seen;  // (incarnation, sequence)
  std::set<uint64_t> incarnations;
  int taken = 0;
  auto take = [&] {
    absl::StatusOr<StreamedBatch> batch = queue.Pop();
    ASSERT_TRUE(batch.ok()) << batch.status();
    ++taken;
    EXPECT_EQ(batch->rows.size(0), 64);
    EXPECT_TRUE(seen.insert({batch->incarnation, batch->sequence}).second)
        << "batch " << batch->sequence << " arrived twice";
    incarnations.insert(batch->incarnation);
  };
  while (taken < 8) {
    take();
    ASSERT_FALSE(HasFatalFailure());
  }
  // Kill the stream: the server goes away, and a new one takes its port and its cursor file.
  const uint64_t old = server->incarnation();
  const int64_t reconnects = (*reader)->stats().reconnects;
  server->Shutdown(absl::ZeroDuration());
  server.reset();
  // What was queued is taken, so that the reader has room to call; it then finds the server
  // gone (a broken stream or a refused call counts as a reconnect).
  while (queue.depth() > 0) {
    take();
    ASSERT_FALSE(HasFatalFailure());
  }
  ASSERT_TRUE(support::Eventually([&] { return (*reader)->stats().reconnects > reconnects; },
                                  std::chrono::seconds(30)));
  auto seen_before = data::ShardCursor::FromBytes((*reader)->furthest_cursor());
  ASSERT_TRUE(seen_before.ok());
  server = StartServer(address);
  ASSERT_NE(server, nullptr);
  ASSERT_NE(server->incarnation(), old);
  // It resumed from its cursor file: nothing before what the reader saw comes again.
  EXPECT_FALSE(seen_before->IsAfter(server->frontier()));
  while (taken < 30) {
    take();
    ASSERT_FALSE(HasFatalFailure());
  }
  EXPECT_EQ(incarnations.size(), 2u);
  EXPECT_GE((*reader)->stats().reconnects, 1);
  EXPECT_EQ((*reader)->stats().batches, 30);
  queue.Close();
  (*reader)->Stop();
}

TEST_F(ActivationStreamTest, ReportsAServerThatStaysAwayLongerThanTheDeadline) {
  const std::string address = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  ActivationStreamOptions options = Stream(address);
  options.server_deadline = absl::Seconds(1);
  PrefetchQueue queue(4, 10);
  auto reader = ActivationStreamReader::Start(options, &queue, nullptr);
  ASSERT_TRUE(reader.ok());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<StreamedBatch> batch = queue.Pop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  ASSERT_EQ(batch.status().code(), absl::StatusCode::kUnavailable) << batch.status();
  EXPECT_NE(batch.status().message().find(address), std::string::npos) << batch.status();
  EXPECT_NE(batch.status().message().find("--server-deadline"), std::string::npos);
  EXPECT_GE((*reader)->stats().reconnects, 1);
}

TEST_F(ActivationStreamTest, GivesUpAtOnceOnTheServerOfAnotherRun) {
  const std::string address = "127.0.0.1:" + std::to_string(FreeLoopbackPort());
  auto server = StartServer(address);
  ASSERT_NE(server, nullptr);
  ActivationStreamOptions options = Stream(address);
  options.config_digest = "0000000000000000";
  PrefetchQueue queue(4, 10);
  auto reader = ActivationStreamReader::Start(options, &queue, nullptr);
  ASSERT_TRUE(reader.ok());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<StreamedBatch> batch = queue.Pop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(batch.status().code(), absl::StatusCode::kFailedPrecondition) << batch.status();
  EXPECT_NE(batch.status().message().find("config digest"), std::string::npos);
}

}  // namespace
}  // namespace sae::trainer
