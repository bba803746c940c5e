// Activations of a hook point over a shard of a dataset: contexts from a ContextShard go
// through GPT-2 (stopping after the hook's layer) in forwards of store_batch_size contexts, and
// their activations (one row of d_in per token) through a MixingBuffer. The seed's
// ActivationsStore, with a resumable position.
#ifndef SAE_CORE_DATA_ACTIVATION_STORE_H_
#define SAE_CORE_DATA_ACTIVATION_STORE_H_

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/context_shard.h"
#include "core/data/mixing_buffer.h"
#include "core/model/gpt2_model.h"

namespace sae::data {

struct ActivationStoreOptions {
  model::HookPoint hook;
  // For per-head hooks (q, k, v, z): the head to keep; -1 keeps all heads flattened.
  int head_index = -1;
  // More hooks captured by the same forward (a run of many SAEs, core/config/sweep.h): a row
  // holds `hook`'s columns, then each of these hooks' columns in order; d_in() is the sum of
  // their widths. head_index applies to every per-head hook. The forward stops after the
  // deepest hook, and the one mixing buffer moves whole rows, so each hook's columns come in
  // the order a store of that hook alone would serve them.
  std::vector<model::HookPoint> more_hooks;
  // Contexts per forward (run.yaml store_batch_size).
  int64_t store_batch_size = 32;
  // The mixing buffer: capacity in activations (n_batches_in_buffer * store_batch_size *
  // context_size), dtype, shuffle and seed.
  MixingBufferOptions buffer;
  // Optional: called on the generating thread after each forward with its wall time in seconds
  // and the contexts it ran (a forward-duration metric). Must be quick and must not call back
  // into the store.
  std::function<void(double seconds, int64_t contexts)> on_forward;
};

// Where a store's stream stands, to continue it after a restart.
struct ActivationResumePoint {
  // The shard position to resume from.
  ShardCursor cursor;
  // Activations to drop after resuming (already served). Non-zero only for FIFO buffers.
  int64_t skip_rows = 0;

  std::string ToBytes() const;
  static absl::StatusOr<ActivationResumePoint> FromBytes(absl::string_view bytes);
};

// Not thread-safe, except as noted: a single thread drives it (NextBatch), or a background
// thread generates (StartBackground) while consumers take from buffer().
class ActivationStore {
 public:
  // `model` must outlive the store. `resume` continues a stream (its cursor must belong to
  // `dataset`); without it the shard starts at its beginning.
  static absl::StatusOr<std::unique_ptr<ActivationStore>> Create(
      const model::Gpt2Model* model, std::shared_ptr<const Dataset> dataset, uint32_t shard_index,
      uint32_t shard_count, const ActivationStoreOptions& options,
      const ActivationResumePoint* resume = nullptr);

  ~ActivationStore();  // stops the background thread, closes the buffer

  // Width of an activation row (every hook's columns).
  int64_t d_in() const { return d_in_; }

  // Runs one forward of store_batch_size contexts and queues its activations in the store;
  // NextBatch and the background thread move queued rows into the buffer as room frees up.
  absl::Status Generate();

  // The next `n` activations, [n, d_in] float32, generating as needed (single-thread use).
  absl::StatusOr<at::Tensor> NextBatch(int64_t n);

  // The first `n` activations generated, before any mixing (the seed's first storage buffer,
  // used to initialise b_dec). Must be called before anything is served; the rows also stay in
  // the stream.
  absl::StatusOr<at::Tensor> InitialSample(int64_t n);

  // Generation on a thread of its own, ahead of consumers and bounded by the buffer. An error
  // stops the thread; background_status() reports it and the buffer is closed.
  void StartBackground();
  void StopBackground();
  absl::Status background_status() const;

  MixingBuffer& buffer() { return *buffer_; }

  // Resume point: for a FIFO buffer, the exact position of the first activation not yet
  // served; for a shuffled buffer, the generation frontier (what sits in the buffer is skipped,
  // never served twice).
  ActivationResumePoint resume_point() const;
  // The shard position after the last context generated.
  ShardCursor frontier() const;

  int64_t contexts_generated() const { return contexts_generated_.load(); }
  int64_t tokens_generated() const { return contexts_generated_.load() * context_size_; }
  // Activations skipped after a resume (FIFO) so far.
  int64_t rows_skipped() const { return rows_skipped_; }

 private:
  ActivationStore() = default;
  absl::StatusOr<at::Tensor> Forward(const std::vector<int32_t>& contexts, int64_t count);
  absl::Status AddPending(bool block);

  const model::Gpt2Model* model_ = nullptr;
  std::unique_ptr<ContextShard> shard_;
  std::unique_ptr<MixingBuffer> buffer_;
  ActivationStoreOptions options_;
  int64_t d_in_ = 0;
  int64_t context_size_ = 0;
  at::Tensor pending_;  // rows generated but not yet in the buffer
  int64_t skip_rows_left_ = 0;
  int64_t rows_skipped_ = 0;
  std::atomic<int64_t> contexts_generated_{0};
  int64_t rows_generated_ = 0;  // rows passed to the buffer (after skipping)
  // (rows generated before the forward, cursor before the forward), for FIFO resume points.
  mutable std::deque<std::pair<int64_t, ShardCursor>> history_;
  int64_t history_base_rows_ = 0;  // rows skipped at resume count as served before history

  std::thread background_;
  std::atomic<bool> stop_{false};
  mutable std::mutex status_mutex_;
  absl::Status background_status_;
  mutable std::mutex shard_mutex_;  // guards shard_ and history_ against resume_point()
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_ACTIVATION_STORE_H_
