#include "core/data/mixing_buffer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/child_process.h"

namespace sae::data {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kDIn = 3;

MixingBufferOptions Options(int64_t capacity, bool shuffle = true, uint64_t seed = 42) {
  MixingBufferOptions options;
  options.capacity = capacity;
  options.d_in = kDIn;
  options.shuffle = shuffle;
  options.seed = seed;
  return options;
}

std::unique_ptr<MixingBuffer> CreateOrDie(const MixingBufferOptions& options) {
  absl::StatusOr<std::unique_ptr<MixingBuffer>> buffer = MixingBuffer::Create(options);
  EXPECT_TRUE(buffer.ok()) << buffer.status();
  return buffer.ok() ? std::move(*buffer) : nullptr;
}

// Activations [count, d_in] whose row i is (first + i, -(first + i), 0.5): identifiable.
at::Tensor Activations(int64_t first, int64_t count) {
  at::Tensor ids = at::arange(first, first + count, at::kFloat).unsqueeze(1);
  return at::cat({ids, -ids, at::full({count, 1}, 0.5f)}, 1);
}

// The ids of the rows of `batch`, checking that each row is intact.
std::vector<int64_t> IdsOf(const at::Tensor& batch) {
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < batch.size(0); ++i) {
    float id = batch[i][0].item<float>();
    EXPECT_EQ(batch[i][1].item<float>(), -id);
    EXPECT_EQ(batch[i][2].item<float>(), 0.5f);
    ids.push_back(static_cast<int64_t>(id));
  }
  return ids;
}

// Single-threaded: adds `total` activations in blocks of `block`, taking batches of `batch`
// whenever the buffer is full, then drains it. Returns the ids in the order served.
std::vector<int64_t> RunSequentially(MixingBuffer& buffer, int64_t total, int64_t block,
                                     int64_t batch) {
  std::vector<int64_t> served;
  int64_t added = 0;
  while (added < total) {
    int64_t count = std::min(block, total - added);
    absl::StatusOr<int64_t> stored = buffer.AddFor(Activations(added, count), absl::ZeroDuration());
    EXPECT_TRUE(stored.ok()) << stored.status();
    added += *stored;
    if (*stored < count) {
      // Full: serve a batch to make room; the rest of the block goes in on the next round.
      absl::StatusOr<at::Tensor> taken = buffer.TakeFor(batch, absl::ZeroDuration());
      EXPECT_TRUE(taken.ok()) << taken.status();
      for (int64_t id : IdsOf(*taken)) served.push_back(id);
    }
  }
  buffer.FinishAdding();
  while (true) {
    absl::StatusOr<at::Tensor> taken = buffer.Take(batch);
    if (!taken.ok()) {
      EXPECT_EQ(taken.status().code(), absl::StatusCode::kOutOfRange) << taken.status();
      break;
    }
    for (int64_t id : IdsOf(*taken)) served.push_back(id);
  }
  return served;
}

std::vector<int64_t> Iota(int64_t count) {
  std::vector<int64_t> ids(count);
  for (int64_t i = 0; i < count; ++i) ids[i] = i;
  return ids;
}

TEST(MixingBufferTest, ServesEveryActivationExactlyOnceAndNotInTheInputOrder) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(64));
  std::vector<int64_t> served = RunSequentially(*buffer, 1001, 7, 10);
  EXPECT_NE(served, Iota(1001));
  std::vector<int64_t> sorted = served;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Iota(1001));
  MixingBufferFill fill = buffer->fill();
  EXPECT_EQ(fill.added_total, 1001);
  EXPECT_EQ(fill.served_total, 1001);
  EXPECT_EQ(fill.stored, 0);
}

TEST(MixingBufferTest, SameSeedServesTheSameOrderAndAnotherSeedAnotherOrder) {
  std::unique_ptr<MixingBuffer> first = CreateOrDie(Options(64, true, 1));
  std::unique_ptr<MixingBuffer> again = CreateOrDie(Options(64, true, 1));
  std::unique_ptr<MixingBuffer> other = CreateOrDie(Options(64, true, 2));
  std::vector<int64_t> first_order = RunSequentially(*first, 500, 16, 8);
  EXPECT_EQ(RunSequentially(*again, 500, 16, 8), first_order);
  EXPECT_NE(RunSequentially(*other, 500, 16, 8), first_order);
}

TEST(MixingBufferTest, OrderDependsOnTheInputNotOnBlockSizesOrThreadTiming) {
  std::unique_ptr<MixingBuffer> reference = CreateOrDie(Options(128, true, 5));
  std::vector<int64_t> expected = RunSequentially(*reference, 2000, 50, 16);

  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(128, true, 5));
  std::thread producer([&buffer] {
    std::mt19937 random(3);
    int64_t added = 0;
    while (added < 2000) {
      int64_t count = std::min<int64_t>(1 + random() % 300, 2000 - added);
      ASSERT_TRUE(buffer->Add(Activations(added, count)).ok());
      added += count;
      if (random() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    buffer->FinishAdding();
  });
  std::vector<int64_t> served;
  while (true) {
    absl::StatusOr<at::Tensor> taken = buffer->Take(16);
    if (!taken.ok()) break;
    for (int64_t id : IdsOf(*taken)) served.push_back(id);
  }
  producer.join();
  EXPECT_EQ(served, expected);
}

TEST(MixingBufferTest, WithoutShuffleIsAFifo) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(64, /*shuffle=*/false));
  EXPECT_EQ(RunSequentially(*buffer, 777, 13, 9), Iota(777));
}

TEST(MixingBufferTest, ServesNothingUntilFullThenHalfPerMixKeepingTheOtherHalf) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(8));
  ASSERT_TRUE(buffer->Add(Activations(0, 7)).ok());
  EXPECT_EQ(buffer->TakeFor(2, absl::Milliseconds(20)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(buffer->Add(Activations(7, 1)).ok());
  MixingBufferFill fill = buffer->fill();
  EXPECT_EQ(fill.stored, 8);
  EXPECT_EQ(fill.ready, 0);
  ASSERT_TRUE(buffer->TakeFor(2, absl::ZeroDuration()).ok());
  fill = buffer->fill();
  EXPECT_EQ(fill.stored, 6);
  EXPECT_EQ(fill.ready, 2);  // half of 8 was mixed out; 2 of those are served
  ASSERT_TRUE(buffer->TakeFor(2, absl::ZeroDuration()).ok());
  EXPECT_EQ(buffer->TakeFor(1, absl::Milliseconds(10)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  fill = buffer->fill();
  EXPECT_EQ(fill.stored, 4);
  EXPECT_EQ(fill.ready, 0);
  EXPECT_EQ(fill.added_total, 8);
  EXPECT_EQ(fill.served_total, 4);
  EXPECT_DOUBLE_EQ(fill.fraction(), 0.5);
}

TEST(MixingBufferTest, MemoryIsBoundedByItsCapacity) {
  MixingBufferOptions options = Options(100);
  options.d_in = 768;
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(options);
  EXPECT_EQ(buffer->storage_bytes(), 100 * 768 * 4);
  // With no consumer, a producer can store no more than the capacity.
  absl::StatusOr<int64_t> stored = buffer->AddFor(at::zeros({250, 768}), absl::Milliseconds(20));
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(*stored, 100);
  EXPECT_EQ(buffer->fill().stored, 100);
}

TEST(MixingBufferTest, CloseUnblocksWaitingConsumersAndProducers) {
  std::unique_ptr<MixingBuffer> empty = CreateOrDie(Options(4));
  std::unique_ptr<MixingBuffer> full = CreateOrDie(Options(4));
  std::atomic<int> cancelled{0};
  std::vector<std::thread> waiters;
  waiters.emplace_back([&] {
    if (empty->Take(2).status().code() == absl::StatusCode::kCancelled) ++cancelled;
  });
  waiters.emplace_back([&] {
    absl::Status status = empty->TakeFor(2, absl::Seconds(60)).status();
    if (status.code() == absl::StatusCode::kCancelled) ++cancelled;
  });
  waiters.emplace_back([&] {
    // Two more rows than there is room for, and no consumer: blocks until closed.
    if (full->Add(Activations(0, 6)).code() == absl::StatusCode::kCancelled) ++cancelled;
  });
  // Every waiter is blocked inside its call: two consumers on `empty`, the producer on `full`
  // once its first 4 rows are in.
  ASSERT_TRUE(support::Eventually(
      [&] { return empty->fill().waiting_calls == 2 && full->fill().waiting_calls == 1; },
      std::chrono::seconds(30)));
  EXPECT_EQ(full->fill().added_total, 4);
  empty->Close();
  full->Close();
  for (std::thread& waiter : waiters) waiter.join();
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_EQ(full->fill().added_total, 4);
  EXPECT_EQ(full->Take(1).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(full->Add(Activations(0, 1)).code(), absl::StatusCode::kCancelled);
}

TEST(MixingBufferTest, LastBatchAfterFinishAddingMayBeShortThenOutOfRange) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(16, false));
  ASSERT_TRUE(buffer->Add(Activations(0, 5)).ok());
  buffer->FinishAdding();
  EXPECT_EQ(buffer->Add(Activations(5, 1)).code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<at::Tensor> first = buffer->Take(3);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(IdsOf(*first), (std::vector<int64_t>{0, 1, 2}));
  absl::StatusOr<at::Tensor> last = buffer->Take(3);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(IdsOf(*last), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(buffer->Take(3).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(MixingBufferTest, RejectsWrongShapesOversizedBatchesAndBadOptions) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(16));
  EXPECT_THAT(buffer->Add(at::zeros({4, kDIn + 1})).message(), HasSubstr("[n, 3]"));
  EXPECT_EQ(buffer->Add(at::zeros({kDIn})).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(buffer->Take(9).status().message(), HasSubstr("half its capacity"));
  EXPECT_FALSE(MixingBuffer::Create(Options(1)).ok());
  MixingBufferOptions no_width = Options(8);
  no_width.d_in = 0;
  EXPECT_FALSE(MixingBuffer::Create(no_width).ok());
}

TEST(MixingBufferTest, ConvertsAddedActivationsToItsDtype) {
  MixingBufferOptions options = Options(4, false);
  options.dtype = at::kBFloat16;
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(options);
  ASSERT_TRUE(buffer->Add(Activations(0, 4).to(at::kDouble)).ok());
  absl::StatusOr<at::Tensor> taken = buffer->Take(2);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(taken->scalar_type(), at::kBFloat16);
  EXPECT_EQ(IdsOf(taken->to(at::kFloat)), (std::vector<int64_t>{0, 1}));
}

TEST(MixingBufferTest, ManyConsumersTogetherReceiveEveryActivationOnce) {
  std::unique_ptr<MixingBuffer> buffer = CreateOrDie(Options(256));
  std::thread producer([&buffer] {
    for (int64_t first = 0; first < 5000; first += 100) {
      ASSERT_TRUE(buffer->Add(Activations(first, 100)).ok());
    }
    buffer->FinishAdding();
  });
  std::vector<std::vector<int64_t>> received(4);
  std::vector<std::thread> consumers;
  for (int c = 0; c < 4; ++c) {
    consumers.emplace_back([&buffer, &received, c] {
      while (true) {
        absl::StatusOr<at::Tensor> taken = buffer->Take(32);
        if (!taken.ok()) break;
        for (int64_t id : IdsOf(*taken)) received[c].push_back(id);
      }
    });
  }
  producer.join();
  for (std::thread& consumer : consumers) consumer.join();
  std::vector<int64_t> all;
  for (const std::vector<int64_t>& ids : received) all.insert(all.end(), ids.begin(), ids.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, Iota(5000));
}

}  // namespace
}  // namespace sae::data
