// Batches received from the activation servers, waiting for the training step; and the demand
// that decides how many batches the readers may still ask for.
//
// Readers reserve batches before they ask a server for them (a StreamActivations call is a
// lease of that many), so that a trainer rank asks, over all its servers together, for exactly
// the batches its steps will use: at most `capacity` ahead of the step, and never beyond the
// demand (the run's remaining steps, plus batches for resampling). Tokens served then equal
// tokens trained.
#ifndef SAE_SERVICES_TRAINER_PREFETCH_QUEUE_H_
#define SAE_SERVICES_TRAINER_PREFETCH_QUEUE_H_

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace sae::trainer {

// A batch as it arrived, with its provenance (for the batch log and the checks built on it).
struct StreamedBatch {
  at::Tensor rows;  // [batch_size, d_in] float32
  int server = 0;   // index in --servers
  uint64_t incarnation = 0;
  uint64_t sequence = 0;
  uint64_t stream_offset = 0;
  bool resent = false;
};

// Thread-safe.
class PrefetchQueue {
 public:
  // `capacity`: batches reserved but not yet taken by the step, at most. `demand`: batches the
  // trainer will take in all (AddDemand raises it).
  PrefetchQueue(int capacity, int64_t demand);

  // Reader side. Reserves between 1 and `max` batches, blocking while the queue is full or the
  // demand is met (AddDemand may raise it); 0 once the queue is closed.
  int Reserve(int max);
  // Returns reservations that did not turn into batches (a call ended early).
  void Release(int count);
  // Adds a reserved batch.
  void Push(StreamedBatch batch);
  // Makes Pop return `status` once the batches already queued are taken: a reader gives up.
  void Fail(absl::Status status);

  // Trainer side. The next batch, waiting as long as it takes: the failure a reader reported
  // once nothing is queued, Cancelled after Close.
  absl::StatusOr<StreamedBatch> Pop();
  // Raises the demand by `count` batches (resampling takes extra ones).
  void AddDemand(int64_t count);
  // Wakes every waiter; Reserve returns 0 and Pop Cancelled from now on.
  void Close();

  int depth() const;               // batches queued
  int64_t reserved_total() const;  // batches ever reserved and not released
  // Readers blocked in Reserve now (the queue is full or the demand met): how a test, or a
  // look at a stuck trainer, tells that the readers wait for the step rather than the servers.
  int waiting_readers() const;

 private:
  const int capacity_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<StreamedBatch> queued_;
  int64_t demand_ = 0;
  int64_t reserved_total_ = 0;  // reservations not released
  int64_t taken_total_ = 0;     // batches popped
  int waiting_readers_ = 0;     // readers inside Reserve's wait
  absl::Status failure_;
  bool closed_ = false;
};

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_PREFETCH_QUEUE_H_
