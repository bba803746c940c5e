// The generating side of an activation server: GPT-2 over the server's shard into the mixing
// buffer (core/data ActivationStore, generating on a thread of its own, ahead of the consumers
// and bounded by the buffer), and batches out of it in the order consumers ask, each tagged
// with where it came from.
//
// Data never rewinds. Every batch carries the generation frontier (a ShardCursor after every
// activation generated so far); a server restarted from the furthest frontier it handed out
// never serves an activation twice. The feed can keep that frontier in a file (written before
// any batch carrying it leaves), and skips ahead when a consumer shows a cursor of this shard
// that lies beyond its own frontier (the server was restarted from an older cursor).
#ifndef SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_FEED_H_
#define SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_FEED_H_

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/data/activation_store.h"
#include "core/data/dataset.h"
#include "core/data/shard_cursor.h"
#include "core/model/gpt2_model.h"
#include "services/activation_server/server_metrics.h"

namespace sae::activation_server {

struct ActivationFeedOptions {
  // The store: hook, contexts per forward, mixing buffer (training::ActivationStoreOptionsFor).
  data::ActivationStoreOptions store;
  // The shard this server generates.
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  // Where generation starts. std::nullopt: the beginning of the shard.
  std::optional<data::ShardCursor> start;
  // When not empty: the frontier is kept in this file (hex of ShardCursor::ToBytes, replaced
  // atomically with an fsync) before any batch carrying a newer frontier is handed out.
  std::string cursor_file;
};

// A batch handed out by the feed.
struct FeedBatch {
  at::Tensor rows;             // [n, d_in] float32
  uint64_t stream_offset = 0;  // rows the feed handed out before this batch
  data::ShardCursor frontier;  // every activation generated so far lies before it
};

// Thread-safe: any number of threads may call Take, SkipTo and the accessors.
class ActivationFeed {
 public:
  // Creates the store at options.start and starts generating. `model` must outlive the feed;
  // `metrics` may be null. Errors of ActivationStore::Create (InvalidArgument for a cursor of
  // another shard or other data).
  static absl::StatusOr<std::unique_ptr<ActivationFeed>> Start(
      const model::Gpt2Model* model, std::shared_ptr<const data::Dataset> dataset,
      ActivationFeedOptions options, ServerMetrics* metrics);

  // Stop().
  ~ActivationFeed();
  ActivationFeed(const ActivationFeed&) = delete;
  ActivationFeed& operator=(const ActivationFeed&) = delete;

  // The next `rows` activations (at most half the buffer's capacity), waiting at most
  // `timeout`: DeadlineExceeded when they are not ready by then (nothing is taken); the
  // generation error when generation failed; Cancelled after Stop.
  absl::StatusOr<FeedBatch> Take(int64_t rows, absl::Duration timeout);

  // Skips generation ahead to `cursor` when it is a cursor of this shard that lies beyond the
  // frontier: the buffer's contents (activations from before `cursor`) are dropped and a new
  // store starts at `cursor`. Returns whether it skipped. FailedPrecondition when the cursor
  // names this shard of other data (another dataset); cursors of other shards are ignored.
  absl::StatusOr<bool> SkipTo(const data::ShardCursor& cursor);

  // Stops generating and wakes every Take (Cancelled). Idempotent.
  void Stop();

  data::ShardCursor frontier() const;
  // Where the current store started (options.start, or the cursor of the last skip).
  data::ShardCursor start_cursor() const;
  int64_t tokens_generated() const { return tokens_generated_.load(); }
  int64_t rows_served() const { return static_cast<int64_t>(rows_served_.load()); }
  data::MixingBufferFill fill() const;
  int64_t d_in() const { return d_in_; }
  // The generation error, OK while generation is healthy.
  absl::Status generation_status() const;
  const ActivationFeedOptions& options() const { return options_; }

 private:
  ActivationFeed(const model::Gpt2Model* model, std::shared_ptr<const data::Dataset> dataset,
                 ActivationFeedOptions options, ServerMetrics* metrics);
  absl::StatusOr<std::shared_ptr<data::ActivationStore>> NewStore(
      const std::optional<data::ShardCursor>& start);
  std::shared_ptr<data::ActivationStore> current() const;
  absl::Status PersistFrontier(const data::ShardCursor& frontier);

  const model::Gpt2Model* const model_;
  const std::shared_ptr<const data::Dataset> dataset_;
  ActivationFeedOptions options_;
  ServerMetrics* const metrics_;
  int64_t d_in_ = 0;
  std::atomic<int64_t> tokens_generated_{0};
  std::atomic<bool> stopped_{false};

  // Serialises Take and SkipTo, so that a batch's offset and frontier match what it holds and
  // a skip never drops a batch being handed out.
  std::mutex take_mutex_;
  std::atomic<uint64_t> rows_served_{0};        // written under take_mutex_
  std::optional<data::ShardCursor> persisted_;  // guarded by take_mutex_

  mutable std::mutex store_mutex_;  // guards store_ and start_cursor_
  std::shared_ptr<data::ActivationStore> store_;
  data::ShardCursor start_cursor_;
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_ACTIVATION_FEED_H_
