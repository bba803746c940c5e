#include "core/data/mixing_buffer.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace sae::data {

absl::StatusOr<std::unique_ptr<MixingBuffer>> MixingBuffer::Create(
    const MixingBufferOptions& options) {
  if (options.capacity < 2) {
    return absl::InvalidArgumentError(absl::StrCat("mixing buffer capacity is ", options.capacity,
                                                   " activations; it must be at least 2"));
  }
  if (options.d_in < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("mixing buffer d_in is ", options.d_in, "; it must be positive"));
  }
  if (!at::isFloatingType(options.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mixing buffer dtype ", c10::toString(options.dtype), " is not a floating-point type"));
  }
  std::unique_ptr<MixingBuffer> buffer;
  try {
    buffer.reset(new MixingBuffer(options));
  } catch (const std::exception& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the mixing buffer (", options.capacity, " x ", options.d_in,
                     " ", c10::toString(options.dtype), "): ", error.what()));
  }
  int64_t bytes = buffer->storage_bytes();
  spdlog::info(
      "mixing buffer: {} activations x d_in {} x {} bytes = {} bytes ({:.1f} MiB) of storage, "
      "plus at most {} bytes of slot indices; {}",
      options.capacity, options.d_in, at::elementSize(options.dtype), bytes,
      static_cast<double>(bytes) / (1 << 20), 3 * options.capacity * sizeof(int64_t),
      options.shuffle ? absl::StrCat("shuffled with seed ", options.seed) : "FIFO (no shuffle)");
  return buffer;
}

MixingBuffer::MixingBuffer(const MixingBufferOptions& options)
    : options_(options),
      row_bytes_(options.d_in * static_cast<int64_t>(at::elementSize(options.dtype))),
      storage_(at::empty({options.capacity, options.d_in}, at::TensorOptions(options.dtype))),
      random_(options.seed) {
  free_slots_.reserve(options.capacity);
  // Popped from the back: slot 0 first.
  for (int64_t slot = options.capacity - 1; slot >= 0; --slot) free_slots_.push_back(slot);
  pool_.reserve(options.capacity);
}

MixingBuffer::~MixingBuffer() { Close(); }

int64_t MixingBuffer::storage_bytes() const { return options_.capacity * row_bytes_; }

absl::Status MixingBuffer::Add(const at::Tensor& activations) {
  absl::StatusOr<int64_t> added = AddUntil(activations, absl::InfiniteFuture());
  return added.status();
}

absl::StatusOr<int64_t> MixingBuffer::AddFor(const at::Tensor& activations,
                                             absl::Duration timeout) {
  return AddUntil(activations, absl::Now() + timeout);
}

absl::StatusOr<int64_t> MixingBuffer::AddUntil(const at::Tensor& activations, absl::Time deadline) {
  if (activations.dim() != 2 || activations.size(1) != options_.d_in) {
    return absl::InvalidArgumentError(
        absl::StrCat("the mixing buffer takes activations of shape [n, ", options_.d_in, "], not ",
                     c10::str(activations.sizes())));
  }
  at::Tensor rows;
  try {
    rows = activations.to(at::kCPU, options_.dtype).contiguous();
  } catch (const std::exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert activations for the mixing buffer: ", error.what()));
  }
  const char* source = static_cast<const char*>(rows.data_ptr());
  char* storage = static_cast<char*>(storage_.data_ptr());
  const int64_t n = rows.size(0);
  int64_t done = 0;
  std::vector<int64_t> slots;
  while (done < n) {
    {
      absl::MutexLock lock(&mutex_);
      while (!closed_ && !finished_ && free_slots_.empty()) {
        ++waiting_calls_;
        const bool timed_out = changed_.WaitWithDeadline(&mutex_, deadline);
        --waiting_calls_;
        if (timed_out) break;
      }
      if (closed_) return absl::CancelledError("the mixing buffer is closed");
      if (finished_) {
        return absl::FailedPreconditionError("activations added after FinishAdding");
      }
      if (free_slots_.empty()) return done;  // deadline
      int64_t count = std::min<int64_t>(n - done, static_cast<int64_t>(free_slots_.size()));
      slots.assign(free_slots_.end() - count, free_slots_.end());
      free_slots_.resize(free_slots_.size() - count);
      slots_being_written_ += count;
    }
    // Copy outside the lock: the slots are ours until they join the pool.
    for (size_t i = 0; i < slots.size(); ++i) {
      std::memcpy(storage + slots[i] * row_bytes_, source + (done + i) * row_bytes_, row_bytes_);
    }
    {
      absl::MutexLock lock(&mutex_);
      pool_.insert(pool_.end(), slots.begin(), slots.end());
      slots_being_written_ -= static_cast<int64_t>(slots.size());
      added_total_ += static_cast<int64_t>(slots.size());
      changed_.SignalAll();
    }
    done += static_cast<int64_t>(slots.size());
  }
  return done;
}

void MixingBuffer::FinishAdding() {
  absl::MutexLock lock(&mutex_);
  finished_ = true;
  changed_.SignalAll();
}

absl::StatusOr<at::Tensor> MixingBuffer::Take(int64_t count) {
  return TakeUntil(count, absl::InfiniteFuture());
}

absl::StatusOr<at::Tensor> MixingBuffer::TakeFor(int64_t count, absl::Duration timeout) {
  return TakeUntil(count, absl::Now() + timeout);
}

absl::StatusOr<at::Tensor> MixingBuffer::TakeUntil(int64_t count, absl::Time deadline) {
  if (count < 1 || count > options_.capacity / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a batch of ", count, " activations; the mixing buffer of ", options_.capacity,
                     " serves batches of 1 to ", options_.capacity / 2, " (half its capacity)"));
  }
  std::vector<int64_t> slots;
  {
    absl::MutexLock lock(&mutex_);
    bool timed_out = false;
    while (true) {
      if (closed_) return absl::CancelledError("the mixing buffer is closed");
      if (static_cast<int64_t>(ready_.size()) >= count) {
        slots.assign(ready_.begin(), ready_.begin() + count);
        break;
      }
      int64_t held = static_cast<int64_t>(pool_.size() + ready_.size());
      if (held == options_.capacity) {
        // Full: everything not yet served is mixed, and half the buffer is served. Waiting for
        // the buffer to be full (not for `count` rows) keeps the mix independent of timing.
        MixLocked(options_.capacity / 2);
        continue;
      }
      if (finished_ && slots_being_written_ == 0) {
        if (!pool_.empty()) {
          MixLocked(static_cast<int64_t>(pool_.size()));
          continue;
        }
        if (!ready_.empty()) {
          slots.assign(ready_.begin(), ready_.end());
          break;
        }
        return absl::OutOfRangeError(absl::StrCat("the mixing buffer served all ", served_total_,
                                                  " activations it was given"));
      }
      if (timed_out) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the mixing buffer did not have ", count, " activations ready in time (", ready_.size(),
            " ready, ", pool_.size(), " waiting for the buffer to fill)"));
      }
      ++waiting_calls_;
      timed_out = changed_.WaitWithDeadline(&mutex_, deadline);
      --waiting_calls_;
    }
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<int64_t>(slots.size()));
    slots_being_read_ += static_cast<int64_t>(slots.size());
  }
  // Copy outside the lock: the slots stay ours until they are freed.
  at::Tensor batch = at::empty({static_cast<int64_t>(slots.size()), options_.d_in},
                               at::TensorOptions(options_.dtype));
  char* target = static_cast<char*>(batch.data_ptr());
  const char* storage = static_cast<const char*>(storage_.data_ptr());
  for (size_t i = 0; i < slots.size(); ++i) {
    std::memcpy(target + i * row_bytes_, storage + slots[i] * row_bytes_, row_bytes_);
  }
  {
    absl::MutexLock lock(&mutex_);
    free_slots_.insert(free_slots_.end(), slots.rbegin(), slots.rend());
    slots_being_read_ -= static_cast<int64_t>(slots.size());
    served_total_ += static_cast<int64_t>(slots.size());
    changed_.SignalAll();
  }
  return batch;
}

void MixingBuffer::MixLocked(int64_t count) {
  if (options_.shuffle) {
    // A partial Fisher-Yates shuffle: the first `count` entries become a uniformly random
    // ordered selection of the pool.
    for (int64_t i = 0; i < count; ++i) {
      uint64_t j = static_cast<uint64_t>(i) + RandomBelowLocked(pool_.size() - i);
      std::swap(pool_[i], pool_[j]);
    }
  }
  ready_.insert(ready_.end(), pool_.begin(), pool_.begin() + count);
  pool_.erase(pool_.begin(), pool_.begin() + count);
}

uint64_t MixingBuffer::RandomBelowLocked(uint64_t bound) {
  // Rejection sampling: uniform and, unlike std::uniform_int_distribution, the same on every
  // standard library.
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t value;
  do {
    value = random_();
  } while (value >= limit);
  return value % bound;
}

void MixingBuffer::Close() {
  absl::MutexLock lock(&mutex_);
  closed_ = true;
  changed_.SignalAll();
}

MixingBufferFill MixingBuffer::fill() const {
  absl::MutexLock lock(&mutex_);
  MixingBufferFill fill;
  fill.capacity = options_.capacity;
  fill.stored = options_.capacity - static_cast<int64_t>(free_slots_.size());
  fill.ready = static_cast<int64_t>(ready_.size());
  fill.added_total = added_total_;
  fill.served_total = served_total_;
  fill.waiting_calls = waiting_calls_;
  return fill;
}

}  // namespace sae::data
