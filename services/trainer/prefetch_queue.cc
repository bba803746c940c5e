#include "services/trainer/prefetch_queue.h"

#include <algorithm>

namespace sae::trainer {

PrefetchQueue::PrefetchQueue(int capacity, int64_t demand)
    : capacity_(std::max(1, capacity)), demand_(demand) {}

int PrefetchQueue::Reserve(int max) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (closed_) return 0;
    // Batches reserved but not taken: queued, or still on their way.
    const int64_t ahead = reserved_total_ - taken_total_;
    const int64_t room = std::min<int64_t>(capacity_ - ahead, demand_ - reserved_total_);
    if (room > 0) {
      const int count = static_cast<int>(std::min<int64_t>(room, std::max(1, max)));
      reserved_total_ += count;
      return count;
    }
    ++waiting_readers_;
    changed_.wait(lock);
    --waiting_readers_;
  }
}

void PrefetchQueue::Release(int count) {
  if (count <= 0) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reserved_total_ -= count;
  }
  changed_.notify_all();
}

void PrefetchQueue::Push(StreamedBatch batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_.push_back(std::move(batch));
  }
  changed_.notify_all();
}

void PrefetchQueue::Fail(absl::Status status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_.ok()) failure_ = std::move(status);
  }
  changed_.notify_all();
}

absl::StatusOr<StreamedBatch> PrefetchQueue::Pop() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !queued_.empty() || !failure_.ok() || closed_; });
  if (!queued_.empty()) {
    StreamedBatch batch = std::move(queued_.front());
    queued_.pop_front();
    ++taken_total_;
    lock.unlock();
    changed_.notify_all();
    return batch;
  }
  if (!failure_.ok()) return failure_;
  return absl::CancelledError("the prefetch queue is closed");
}

void PrefetchQueue::AddDemand(int64_t count) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    demand_ += count;
  }
  changed_.notify_all();
}

void PrefetchQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

int PrefetchQueue::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(queued_.size());
}

int PrefetchQueue::waiting_readers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_readers_;
}

int64_t PrefetchQueue::reserved_total() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reserved_total_;
}

}  // namespace sae::trainer
