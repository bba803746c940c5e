// An activation server in-process on a loopback port, spoken to over real gRPC.
#include "services/activation_server/activation_server.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "core/data/context_shard.h"
#include "core/training/run_assets.h"
#include "core/wire/activation_codec.h"
#include "core/wire/run_digest.h"
#include "sae/v1/activations.grpc.pb.h"
#include "services/common/stream_protocol.h"
#include "support/child_process.h"
#include "support/ports.h"
#include "support/temp_dir.h"
#include "support/tiny_run.h"

namespace sae::activation_server {
namespace {

using support::TempDir;

struct Received {
  std::vector<v1::ActivationBatch> batches;
  grpc::Status status;
};

// A trainer rank as the server sees it, driven by hand.
class Consumer {
 public:
  Consumer(int port, const config::RunConfig& config, int rank, int count)
      : config_(config), rank_(rank), count_(count) {
    stub_ = v1::ActivationService::NewStub(
        *stream::CreateStreamChannel("127.0.0.1:" + std::to_string(port), {}));
    session_ = "session-" + std::to_string(rank) + "-" + std::to_string(next_session_++);
  }

  v1::StreamRequest Request(int max_batches) const {
    v1::StreamRequest r;
    r.set_run_id(wire::DefaultRunId(config_));
    r.set_config_digest(wire::RunConfigDigest(config_));
    r.set_consumer_rank(rank_);
    r.set_consumer_count(count_);
    r.set_consumer_session(session_);
    r.set_server_incarnation(incarnation_);
    r.set_last_sequence(last_sequence_);
    r.set_wire_dtype(stream::ToWire(dtype_));
    r.set_batch_size(config_.train_batch_size / count_);
    r.set_max_batches(max_batches);
    for (const std::string& c : cursors_) r.add_resume_cursors(c);
    return r;
  }

  // One call for `max_batches`; reads at most `read` of them (then cancels the call) and
  // acknowledges what it read on the next call.
  // `before_cancel` runs before the call is cancelled after `read` batches.
  Received Pull(int max_batches, int read = -1,
                const std::function<bool()>& before_cancel = nullptr) {
    return PullWith(Request(max_batches), read, before_cancel);
  }

  Received PullWith(const v1::StreamRequest& request, int read = -1,
                    const std::function<bool()>& before_cancel = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    // As the trainer's stream: a connection attempt that fails (seen once with 16 consumers
    // connecting at once on a loaded machine) is retried until the deadline, not failed at once.
    context.set_wait_for_ready(true);
    auto reader = stub_->StreamActivations(&context, request);
    Received out;
    v1::ActivationBatch batch;
    while ((read < 0 || static_cast<int>(out.batches.size()) < read) && reader->Read(&batch)) {
      incarnation_ = batch.server_incarnation();
      last_sequence_ = batch.sequence();
      out.batches.push_back(batch);
    }
    if (read >= 0 && static_cast<int>(out.batches.size()) == read) {
      if (before_cancel) EXPECT_TRUE(before_cancel());
      context.TryCancel();
    }
    out.status = reader->Finish();
    return out;
  }

  v1::ServerStatus Status() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ServerStatus status;
    EXPECT_TRUE(stub_->GetServerStatus(&context, {}, &status).ok());
    return status;
  }

  void set_dtype(config::DType dtype) { dtype_ = dtype; }
  void add_cursor(const std::string& bytes) { cursors_.push_back(bytes); }
  void NewSession() { session_ = "session-" + std::to_string(next_session_++); }

 private:
  // Atomic: the sixteen-consumer test constructs consumers on sixteen threads at once.
  static inline std::atomic<int> next_session_{0};
  config::RunConfig config_;
  int rank_;
  int count_;
  std::string session_;
  uint64_t incarnation_ = 0;
  uint64_t last_sequence_ = 0;
  config::DType dtype_ = config::DType::kFloat32;
  std::vector<std::string> cursors_;
  std::unique_ptr<v1::ActivationService::Stub> stub_;
};

at::Tensor Rows(const v1::ActivationBatch& batch) {
  auto dtype = stream::FromWire(batch.dtype());
  EXPECT_TRUE(dtype.ok());
  auto rows = wire::DecodeActivations(batch.data(), *dtype, batch.shape(0), batch.shape(1));
  EXPECT_TRUE(rows.ok()) << rows.status();
  return *rows;
}

class ActivationServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    ASSERT_TRUE(support::WriteTinyRunFiles(dir_.path()).ok());
  }

  config::RunConfig Config(std::vector<std::string> overrides = {}) {
    overrides.push_back("shuffle=false");
    config::RunConfig config = support::ParseTinyRun(dir_.path(), overrides);
    EXPECT_TRUE(training::ResolveRunConfig(config).ok());
    return config;
  }

  std::unique_ptr<ActivationServer> Start(const config::RunConfig& config, uint32_t shard = 0,
                                          uint32_t shards = 1, const std::string& cursor_file = "",
                                          const std::string& listen = "127.0.0.1:0",
                                          int max_batches_per_call = 4) {
    ActivationServerOptions options;
    options.config = config;
    options.shard_index = shard;
    options.shard_count = shards;
    options.listen = listen;
    options.cursor_file = cursor_file;
    options.max_batches_per_call = max_batches_per_call;
    auto server = ActivationServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  // The activations of `shard` in the order the store generates them (FIFO), rows [0, n).
  at::Tensor StoreRows(const config::RunConfig& c, uint32_t shard, uint32_t shards, int64_t n,
                       const data::ShardCursor* from = nullptr) {
    config::RunConfig config = c;
    auto assets = training::LoadRunAssets(config);
    EXPECT_TRUE(assets.ok()) << assets.status();
    data::ActivationResumePoint point;
    if (from != nullptr) point.cursor = *from;
    auto store = data::ActivationStore::Create(
        assets->model.get(), assets->dataset, shard, shards,
        training::ActivationStoreOptionsFor(config, assets->hook), from ? &point : nullptr);
    EXPECT_TRUE(store.ok()) << store.status();
    std::vector<at::Tensor> rows;
    for (int64_t have = 0; have < n; have += 16) rows.push_back(*(*store)->NextBatch(16));
    return at::cat(rows).narrow(0, 0, n);
  }

  TempDir dir_;
};

TEST_F(ActivationServerTest, ServesEveryActivationOnceAcrossConsumersInTheStoresOrder) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  std::vector<Received> received(2);
  std::vector<std::thread> consumers;
  for (int rank = 0; rank < 2; ++rank) {
    consumers.emplace_back([&, rank] {
      Consumer consumer(server->port(), config, rank, 2);
      for (int call = 0; call < 3; ++call) {
        Received r = consumer.Pull(4);
        EXPECT_TRUE(r.status.ok()) << r.status.error_message();
        for (auto& b : r.batches) received[rank].batches.push_back(b);
      }
    });
  }
  for (auto& t : consumers) t.join();

  // 2 consumers x 3 calls x 4 batches of 32 rows: offsets 0..767, each exactly once.
  const at::Tensor expected = StoreRows(config, 0, 1, 24 * 32);
  std::set<uint64_t> offsets;
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_EQ(received[rank].batches.size(), 12u);
    uint64_t sequence = 0;
    for (const auto& batch : received[rank].batches) {
      EXPECT_EQ(batch.sequence(), ++sequence) << "rank " << rank;
      EXPECT_FALSE(batch.resent());
      EXPECT_TRUE(offsets.insert(batch.stream_offset()).second)
          << "offset " << batch.stream_offset() << " served twice";
      ASSERT_LT(batch.stream_offset() + 32, expected.size(0) + 1);
      EXPECT_TRUE(at::equal(Rows(batch), expected.narrow(0, batch.stream_offset(), 32)))
          << "the batch at offset " << batch.stream_offset() << " is not the store's rows";
    }
  }
  EXPECT_EQ(offsets.size(), 24u);
  EXPECT_EQ(*offsets.rbegin(), 23u * 32u);
  EXPECT_EQ(server->activations_served(), 24 * 32);
}

TEST_F(ActivationServerTest, ResendsWhatAConsumerDidNotReceiveAndNothingElse) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  Consumer consumer(server->port(), config, 0, 1);
  // The stream breaks after the consumer read one batch of the four the server sent (small
  // batches fit the HTTP/2 window, so the server writes all four without waiting).
  Received first = consumer.Pull(4, /*read=*/1, [&] {
    return support::Eventually([&] { return server->activations_served() == 4 * 64; },
                                        std::chrono::seconds(10));
  });
  ASSERT_EQ(first.batches.size(), 1u);
  EXPECT_EQ(first.batches[0].sequence(), 1u);
  Received second = consumer.Pull(4);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  ASSERT_EQ(second.batches.size(), 4u);
  // Batches 2 to 4 come again, unchanged, then a new one.
  for (int i = 0; i < 4; ++i) {
    const auto& batch = second.batches[i];
    EXPECT_EQ(batch.sequence(), static_cast<uint64_t>(i + 2));
    EXPECT_EQ(batch.resent(), i < 3) << "sequence " << batch.sequence();
    EXPECT_EQ(batch.stream_offset(), static_cast<uint64_t>((i + 1) * 64));
  }
  EXPECT_EQ(server->activations_served(), 5 * 64);
  // An acknowledging call frees the window: nothing is sent twice afterwards.
  Received third = consumer.Pull(2);
  ASSERT_EQ(third.batches.size(), 2u);
  EXPECT_FALSE(third.batches[0].resent());
  EXPECT_EQ(third.batches[0].sequence(), 6u);
  EXPECT_EQ(third.batches[0].stream_offset(), 5u * 64u);
}

TEST_F(ActivationServerTest, ANewConsumerSessionDoesNotGetTheOldSessionsBatches) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  Consumer consumer(server->port(), config, 0, 1);
  Received first = consumer.Pull(4, /*read=*/1);
  ASSERT_EQ(first.batches.size(), 1u);
  Consumer restarted(server->port(), config, 0, 1);  // a new trainer process for rank 0
  Received fresh = restarted.Pull(1);
  ASSERT_EQ(fresh.batches.size(), 1u);
  EXPECT_FALSE(fresh.batches[0].resent());
  EXPECT_EQ(fresh.batches[0].sequence(), 1u);
  EXPECT_GT(fresh.batches[0].stream_offset(), first.batches[0].stream_offset());
}

TEST_F(ActivationServerTest, RefusesConsumersOfAnotherRunOrWithABadBatch) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  config::RunConfig other = config;
  other.lr = 0.5;
  Consumer stranger(server->port(), other, 0, 1);
  Received refused = stranger.Pull(1);
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.status.error_message().find("config digest"), std::string::npos);

  Consumer consumer(server->port(), config, 0, 1);
  v1::StreamRequest odd = consumer.Request(1);
  odd.set_batch_size(63);
  EXPECT_EQ(consumer.PullWith(odd).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::StreamRequest rank = consumer.Request(1);
  rank.set_consumer_rank(1);
  EXPECT_EQ(consumer.PullWith(rank).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ActivationServerTest, ServesOneTrainerGenerationAtATime) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  server->SetTrainerGeneration(3);
  Consumer consumer(server->port(), config, 0, 1);
  auto pull = [&](uint64_t generation) {
    v1::StreamRequest request = consumer.Request(1);
    request.set_generation(generation);
    return consumer.PullWith(request);
  };
  Received current = pull(3);
  EXPECT_TRUE(current.status.ok()) << current.status.error_message();
  EXPECT_EQ(current.batches.size(), 1u);
  Received replaced = pull(2);
  EXPECT_EQ(replaced.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(replaced.status.error_message().find("replaced by generation 3"), std::string::npos)
      << replaced.status.error_message();
  EXPECT_EQ(pull(4).status.error_code(), grpc::StatusCode::UNAVAILABLE) << "not assigned yet";
  EXPECT_EQ(consumer.Status().generation(), 3u);

  server->SetTrainerGeneration(ActivationServiceImpl::kBetweenGenerations);
  EXPECT_EQ(pull(3).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(consumer.Status().has_generation());
  server->SetTrainerGeneration(4);
  consumer.NewSession();
  Received next = pull(4);
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  EXPECT_EQ(next.batches.size(), 1u);
}

TEST_F(ActivationServerTest, UnderAControllerAConsumerOfAnotherRunIsToldToRetry) {
  const config::RunConfig config = Config();
  ActivationServerOptions options;
  options.config = config;
  options.run_id = "run-a";
  options.other_runs_are_early = true;
  auto server = ActivationServer::Start(std::move(options));
  ASSERT_TRUE(server.ok()) << server.status();
  Consumer consumer((*server)->port(), config, 0, 1);
  v1::StreamRequest request = consumer.Request(1);
  request.set_run_id("run-b");
  EXPECT_EQ(consumer.PullWith(request).status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ActivationServerTest, SendsTheWireDtypeTheConsumerAsksFor) {
  const config::RunConfig config = Config();
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  const at::Tensor expected = StoreRows(config, 0, 1, 4 * 64);
  for (config::DType dtype : {config::DType::kBFloat16, config::DType::kFloat16}) {
    Consumer consumer(server->port(), config, 0, 1);
    consumer.set_dtype(dtype);
    Received r = consumer.Pull(1);
    ASSERT_EQ(r.batches.size(), 1u);
    const auto& batch = r.batches[0];
    EXPECT_EQ(batch.dtype(), stream::ToWire(dtype));
    EXPECT_EQ(batch.data().size(), 64u * 32u * 2u);
    at::Tensor want = expected.narrow(0, batch.stream_offset(), 64);
    EXPECT_TRUE(at::equal(Rows(batch), want.to(wire::ScalarTypeOf(dtype)).to(at::kFloat)));
  }
}

TEST_F(ActivationServerTest, SkipsAheadToAConsumersCursorBeyondItsFrontier) {
  const config::RunConfig config = Config();
  // Where shard 0 stands after 500 contexts: far beyond what the server generated so far.
  config::RunConfig c = config;
  auto assets = training::LoadRunAssets(c);
  ASSERT_TRUE(assets.ok());
  auto shard = data::ContextShard::Open(assets->dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> contexts;
  ASSERT_TRUE((*shard)->NextBatch(500, &contexts).ok());
  const data::ShardCursor ahead = (*shard)->cursor();

  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  Consumer consumer(server->port(), config, 0, 1);
  consumer.add_cursor(ahead.ToBytes());
  Received r = consumer.Pull(1);
  ASSERT_EQ(r.batches.size(), 1u) << r.status.error_message();
  EXPECT_TRUE(server->frontier().IsAfter(ahead));
  v1::ServerStatus status = consumer.Status();
  EXPECT_EQ(status.start_cursor(), ahead.ToBytes());
  EXPECT_TRUE(at::equal(Rows(r.batches[0]), StoreRows(config, 0, 1, 64, &ahead)));
}

TEST_F(ActivationServerTest, ARestartFromItsCursorFileNeverServesAnActivationAgain) {
  const config::RunConfig config = Config();
  const std::string cursor_file = dir_.path() + "/shard0.cursor";
  std::string last_frontier;
  {
    auto server = Start(config, 0, 1, cursor_file);
    ASSERT_NE(server, nullptr);
    Consumer consumer(server->port(), config, 0, 1);
    Received r = consumer.Pull(3);
    ASSERT_EQ(r.batches.size(), 3u);
    last_frontier = r.batches.back().frontier_cursor();
  }
  auto saved = data::ShardCursor::FromBytes(last_frontier);
  ASSERT_TRUE(saved.ok());
  auto server = Start(config, 0, 1, cursor_file);
  ASSERT_NE(server, nullptr);
  Consumer consumer(server->port(), config, 0, 1);
  v1::ServerStatus status = consumer.Status();
  auto start = data::ShardCursor::FromBytes(status.start_cursor());
  ASSERT_TRUE(start.ok());
  EXPECT_TRUE(*start == *saved || start->IsAfter(*saved)) << start->DebugString();
  Received r = consumer.Pull(1);
  ASSERT_EQ(r.batches.size(), 1u);
  EXPECT_TRUE(at::equal(Rows(r.batches[0]), StoreRows(config, 0, 1, 64, &*start)));
}

TEST_F(ActivationServerTest, ReportsHealthAndEndsStreamsPromptlyOnShutdown) {
  const config::RunConfig config =
      Config({"train_batch_size=2048", "total_training_tokens=20480", "n_batches_in_buffer=64"});
  auto server = Start(config, 0, 1, "", "127.0.0.1:0", /*max_batches_per_call=*/100000);
  ASSERT_NE(server, nullptr);
  auto channel = *stream::CreateStreamChannel("127.0.0.1:" + std::to_string(server->port()), {});
  EXPECT_TRUE(rpc::CheckHealth(channel, stream::kActivationServiceName, absl::Seconds(5)).ok());

  // A consumer that asks for endless batches and reads none: once the HTTP/2 windows are full,
  // the server's write waits for it.
  Consumer consumer(server->port(), config, 0, 1);
  grpc::ClientContext context;
  auto stub = v1::ActivationService::NewStub(channel);
  auto reader = stub->StreamActivations(&context, consumer.Request(100000));
  // The server's own signal: a write that has waited a second on loopback waits for a reader.
  ASSERT_TRUE(support::Eventually([&] { return server->oldest_write_wait() >= absl::Seconds(1); },
                                  std::chrono::seconds(60)));
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown(absl::Seconds(1));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  v1::ActivationBatch batch;
  int64_t read = 0;
  while (reader->Read(&batch)) read += batch.shape(0);
  EXPECT_LT(read, 100000 * 2048);
  EXPECT_FALSE(reader->Finish().ok());
  EXPECT_FALSE(rpc::CheckHealth(channel, stream::kActivationServiceName, absl::Seconds(1)).ok());
}

TEST_F(ActivationServerTest, SixteenConsumersAreServedWhileOneThatStopsReadingHoldsOnlyItsWindow) {
  const config::RunConfig config = Config(
      {"train_batch_size=1024", "total_training_tokens=100000000", "n_batches_in_buffer=64"});
  auto server = Start(config, 0, 1, "", "127.0.0.1:0", /*max_batches_per_call=*/100000);
  ASSERT_NE(server, nullptr);
  constexpr int kConsumers = 16;
  // Consumer 15 asks for endless batches and reads none: its stream's writes stop once the
  // HTTP/2 flow-control windows are full.
  Consumer stalled(server->port(), config, kConsumers - 1, kConsumers);
  auto channel = *stream::CreateStreamChannel("127.0.0.1:" + std::to_string(server->port()), {});
  auto stub = v1::ActivationService::NewStub(channel);
  grpc::ClientContext context;
  auto reader = stub->StreamActivations(&context, stalled.Request(100000));
  ASSERT_TRUE(support::Eventually([&] { return server->oldest_write_wait() >= absl::Seconds(1); },
                                  std::chrono::seconds(60)));
  const int64_t held_by_stalled = server->unacknowledged_bytes();
  ASSERT_GT(held_by_stalled, 0);

  // The other 15, at once: 5 calls of 4 batches each, every batch read (and acknowledged by
  // the next call, so each consumer's last 4 stay unacknowledged).
  constexpr int kCalls = 5;
  constexpr int kBatchesPerCall = 4;
  std::vector<std::thread> others;
  std::vector<int64_t> batch_bytes(kConsumers - 1, 0);
  std::vector<int> received(kConsumers - 1, 0);
  for (int rank = 0; rank < kConsumers - 1; ++rank) {
    others.emplace_back([&, rank] {
      Consumer consumer(server->port(), config, rank, kConsumers);
      for (int call = 0; call < kCalls; ++call) {
        Received r = consumer.Pull(kBatchesPerCall);
        EXPECT_TRUE(r.status.ok()) << "consumer " << rank << ": " << r.status.error_message();
        received[static_cast<size_t>(rank)] += static_cast<int>(r.batches.size());
        for (const v1::ActivationBatch& batch : r.batches) {
          EXPECT_EQ(batch.shape(0), 1024 / kConsumers);
          batch_bytes[static_cast<size_t>(rank)] = static_cast<int64_t>(batch.data().size());
        }
      }
    });
  }
  for (std::thread& other : others) other.join();
  for (int rank = 0; rank < kConsumers - 1; ++rank) {
    EXPECT_EQ(received[static_cast<size_t>(rank)], kCalls * kBatchesPerCall) << rank;
  }
  // The stalled consumer still holds what it held: the server holds exactly that plus the
  // others' last, unacknowledged calls.
  EXPECT_GE(server->oldest_write_wait(), absl::Seconds(1)) << "the stalled stream moved";
  const int64_t one_batch = batch_bytes[0];
  ASSERT_GT(one_batch, 0);
  EXPECT_EQ(server->unacknowledged_bytes(),
            held_by_stalled + (kConsumers - 1) * kBatchesPerCall * one_batch);
  std::printf("a consumer that stopped reading holds %lld bytes (%.1f batches of %lld bytes)\n",
              static_cast<long long>(held_by_stalled),
              static_cast<double>(held_by_stalled) / static_cast<double>(one_batch),
              static_cast<long long>(one_batch));
  RecordProperty("stalled_consumer_bytes", std::to_string(held_by_stalled));
  context.TryCancel();
  reader->Finish();
}

TEST_F(ActivationServerTest, RefusesAShardThatDoesNotExistOrACursorOfAnotherShard) {
  ActivationServerOptions options;
  options.config = Config();
  options.shard_index = 2;
  options.shard_count = 2;
  EXPECT_EQ(ActivationServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  data::ShardCursor other;
  other.shard_index = 1;
  other.shard_count = 2;
  options.shard_index = 0;
  options.resume_cursor = other;
  auto refused = ActivationServer::Start(options);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("shard 1/2"), std::string::npos) << refused.status();
}

}  // namespace
}  // namespace sae::activation_server
