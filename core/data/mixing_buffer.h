// The mixing buffer: activations go in as they are produced (context after context) and come
// out shuffled, so that a training batch mixes many contexts and documents.
//
// The seed's rule (docs/definitions.md), generalised to a capacity in activations: fill the buffer;
// shuffle everything held and serve one half as batches while the other half stays; refill
// the served half with new activations; shuffle everything again; and so on. A batch is served
// from the mixed half only, so every activation waits in the buffer until the buffer is full at
// least once after it came in.
#ifndef SAE_CORE_DATA_MIXING_BUFFER_H_
#define SAE_CORE_DATA_MIXING_BUFFER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sae::data {

struct MixingBufferOptions {
  // Activations held at most; the buffer allocates capacity x d_in elements up front and never
  // more. At least 2. The seed's equivalent: n_batches_in_buffer * store_batch_size *
  // context_size.
  int64_t capacity = 0;

  // Elements per activation (the hook point's width, 768 for GPT-2 small's residual stream).
  int64_t d_in = 0;

  // Element type of the storage and of the batches served; added activations are converted.
  at::ScalarType dtype = at::kFloat;

  // false: no shuffling, the buffer is a FIFO (activations leave in the order they came in),
  // for exactly reproducible runs.
  bool shuffle = true;

  // The shuffle is a function of the seed and the order activations came in: the same seed and
  // the same input serve the same order, whatever the threads' timing (with one producer).
  uint64_t seed = 42;
};

// Counts for reporting (run.yaml's buffer fill metric); the totals are independent of cursors.
struct MixingBufferFill {
  int64_t capacity = 0;
  int64_t stored = 0;        // activations held now, servable or not
  int64_t ready = 0;         // activations mixed and servable now
  int64_t added_total = 0;   // activations ever added
  int64_t served_total = 0;  // activations ever served
  int64_t waiting_calls = 0;  // Add and Take calls blocked now (for room, or for activations)

  double fraction() const {
    return capacity == 0 ? 0.0 : static_cast<double>(stored) / static_cast<double>(capacity);
  }
};

// Thread-safe: one producer thread adds while any number of consumer threads take. With more
// than one producer the buffer still serves every activation once, but the order of their
// blocks, and so the shuffle, depends on timing.
class MixingBuffer {
 public:
  // InvalidArgument for a capacity below 2 or d_in below 1. Logs the memory it holds.
  static absl::StatusOr<std::unique_ptr<MixingBuffer>> Create(const MixingBufferOptions& options);

  // Closes the buffer. No thread may be inside a call when it is destroyed.
  ~MixingBuffer();
  MixingBuffer(const MixingBuffer&) = delete;
  MixingBuffer& operator=(const MixingBuffer&) = delete;

  // Stores `activations` ([n, d_in], any device and floating type; copied), blocking while the
  // buffer is full. Rows enter in order, as room frees up, so n may exceed the capacity.
  // InvalidArgument for a wrong shape; FailedPrecondition after FinishAdding; Cancelled when
  // the buffer is closed (rows stored before stay stored).
  absl::Status Add(const at::Tensor& activations);

  // As Add, but waits at most `timeout` in all: returns how many leading rows were stored, fewer
  // than n when the time ran out.
  absl::StatusOr<int64_t> AddFor(const at::Tensor& activations, absl::Duration timeout);

  // Declares that no more activations come: what is held is mixed and served to the end.
  void FinishAdding();

  // The next `count` activations, [count, d_in], blocking until they are mixed and servable.
  // count must be at most capacity / 2 (one mix serves half the buffer): InvalidArgument
  // otherwise. After FinishAdding the last batch may hold fewer rows, and then OutOfRange says
  // that everything was served. Cancelled when the buffer is closed.
  absl::StatusOr<at::Tensor> Take(int64_t count);

  // As Take, but DeadlineExceeded when `count` activations are not servable within `timeout`;
  // nothing is taken then.
  absl::StatusOr<at::Tensor> TakeFor(int64_t count, absl::Duration timeout);

  // Shutdown: wakes every waiting call; from now on Add and Take return Cancelled, and the
  // activations held are dropped. Idempotent.
  void Close();

  MixingBufferFill fill() const;

  // Bytes of activation storage: capacity * d_in * element size, allocated at Create.
  int64_t storage_bytes() const;

  const MixingBufferOptions& options() const { return options_; }

 private:
  explicit MixingBuffer(const MixingBufferOptions& options);

  absl::StatusOr<int64_t> AddUntil(const at::Tensor& activations, absl::Time deadline);
  absl::StatusOr<at::Tensor> TakeUntil(int64_t count, absl::Time deadline);

  // Moves `count` activations of the pool, chosen at random (the first ones without shuffle),
  // to the end of the ready queue in random order.
  void MixLocked(int64_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  uint64_t RandomBelowLocked(uint64_t bound) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const MixingBufferOptions options_;
  const int64_t row_bytes_;
  at::Tensor storage_;  // [capacity, d_in]; a row is a slot

  mutable absl::Mutex mutex_;
  absl::CondVar changed_;
  std::vector<int64_t> free_slots_ ABSL_GUARDED_BY(mutex_);
  std::vector<int64_t> pool_ ABSL_GUARDED_BY(mutex_);  // stored, not yet mixed out, in order
  std::deque<int64_t> ready_ ABSL_GUARDED_BY(mutex_);  // mixed, served front first
  int64_t slots_being_written_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t slots_being_read_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t added_total_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t served_total_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t waiting_calls_ ABSL_GUARDED_BY(mutex_) = 0;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  std::mt19937_64 random_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_MIXING_BUFFER_H_
