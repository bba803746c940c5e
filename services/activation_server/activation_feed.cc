#include "services/activation_server/activation_feed.h"

#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/wire/cursor_text.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {

ActivationFeed::ActivationFeed(const model::Gpt2Model* model,
                               std::shared_ptr<const data::Dataset> dataset,
                               ActivationFeedOptions options, ServerMetrics* metrics)
    : model_(model), dataset_(std::move(dataset)), options_(std::move(options)), metrics_(metrics) {
  const int64_t context_size = dataset_->options().context_size;
  options_.store.on_forward = [this, context_size](double seconds, int64_t contexts) {
    tokens_generated_.fetch_add(contexts * context_size);
    if (metrics_ != nullptr) {
      metrics_->forward_seconds->Observe(seconds);
      metrics_->generated_tokens->Increment(static_cast<double>(contexts * context_size));
    }
  };
}

absl::StatusOr<std::unique_ptr<ActivationFeed>> ActivationFeed::Start(
    const model::Gpt2Model* model, std::shared_ptr<const data::Dataset> dataset,
    ActivationFeedOptions options, ServerMetrics* metrics) {
  std::unique_ptr<ActivationFeed> feed(
      new ActivationFeed(model, std::move(dataset), std::move(options), metrics));
  SAE_ASSIGN_OR_RETURN(feed->store_, feed->NewStore(feed->options_.start));
  feed->d_in_ = feed->store_->d_in();
  feed->start_cursor_ = feed->store_->frontier();
  feed->store_->StartBackground();
  return feed;
}

ActivationFeed::~ActivationFeed() { Stop(); }

absl::StatusOr<std::shared_ptr<data::ActivationStore>> ActivationFeed::NewStore(
    const std::optional<data::ShardCursor>& start) {
  std::unique_ptr<data::ActivationStore> store;
  if (start) {
    data::ActivationResumePoint point;
    point.cursor = *start;
    SAE_ASSIGN_OR_RETURN(
        store, data::ActivationStore::Create(model_, dataset_, options_.shard_index,
                                             options_.shard_count, options_.store, &point));
  } else {
    SAE_ASSIGN_OR_RETURN(store,
                         data::ActivationStore::Create(model_, dataset_, options_.shard_index,
                                                       options_.shard_count, options_.store));
  }
  return std::shared_ptr<data::ActivationStore>(std::move(store));
}

std::shared_ptr<data::ActivationStore> ActivationFeed::current() const {
  std::lock_guard<std::mutex> lock(store_mutex_);
  return store_;
}

void ActivationFeed::Stop() {
  if (stopped_.exchange(true)) return;
  std::shared_ptr<data::ActivationStore> store = current();
  if (store) {
    store->buffer().Close();  // wakes every Take at once
    store->StopBackground();
  }
}

absl::Status ActivationFeed::PersistFrontier(const data::ShardCursor& frontier) {
  if (options_.cursor_file.empty() || (persisted_ && *persisted_ == frontier)) {
    return absl::OkStatus();
  }
  SAE_RETURN_IF_ERROR(
      WriteFileAtomically(options_.cursor_file, wire::CursorToHex(frontier) + "\n"));
  persisted_ = frontier;
  return absl::OkStatus();
}

absl::StatusOr<FeedBatch> ActivationFeed::Take(int64_t rows, absl::Duration timeout) {
  std::lock_guard<std::mutex> lock(take_mutex_);
  if (stopped_.load()) return absl::CancelledError("the activation server is shutting down");
  std::shared_ptr<data::ActivationStore> store = current();
  absl::StatusOr<at::Tensor> taken = store->buffer().TakeFor(rows, timeout);
  if (!taken.ok()) {
    // A closed buffer means generation failed (or Stop); report the cause, not the symptom.
    absl::Status generation = store->background_status();
    if (taken.status().code() == absl::StatusCode::kCancelled && !generation.ok()) {
      return absl::InternalError(
          absl::StrCat("activation generation failed: ", generation.message()));
    }
    return taken.status();
  }
  FeedBatch batch;
  batch.rows = std::move(*taken);
  batch.stream_offset = rows_served_.load();
  batch.frontier = store->frontier();
  rows_served_ += static_cast<uint64_t>(rows);
  if (absl::Status persisted = PersistFrontier(batch.frontier); !persisted.ok()) {
    // The batch is already out of the buffer; losing it would be worse than a stale file.
    spdlog::error("cannot keep the generation frontier in {}: {}", options_.cursor_file,
                  persisted.ToString());
  }
  return batch;
}

absl::StatusOr<bool> ActivationFeed::SkipTo(const data::ShardCursor& cursor) {
  if (cursor.shard_index != options_.shard_index || cursor.shard_count != options_.shard_count) {
    return false;
  }
  std::lock_guard<std::mutex> lock(take_mutex_);
  if (stopped_.load()) return false;
  std::shared_ptr<data::ActivationStore> old = current();
  const data::ShardCursor frontier = old->frontier();
  if (cursor.dataset_fingerprint != frontier.dataset_fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("a consumer's cursor for shard ", cursor.shard_index, "/", cursor.shard_count,
                     " belongs to other data (dataset fingerprint ", cursor.dataset_fingerprint,
                     ", this server's is ", frontier.dataset_fingerprint, ")"));
  }
  if (!cursor.IsAfter(frontier)) return false;
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<data::ActivationStore> fresh, NewStore(cursor));
  fresh->StartBackground();
  {
    std::lock_guard<std::mutex> store_lock(store_mutex_);
    store_ = fresh;
    start_cursor_ = cursor;
  }
  spdlog::warn(
      "generation skips ahead from {} to {}: a consumer has seen activations up to there (this "
      "server was started behind its last frontier; start it with --cursor-file or "
      "--resume-cursor to avoid this)",
      frontier.DebugString(), cursor.DebugString());
  if (metrics_ != nullptr) metrics_->cursor_skips->Increment();
  old->buffer().Close();
  old->StopBackground();
  return true;
}

data::ShardCursor ActivationFeed::frontier() const { return current()->frontier(); }

data::ShardCursor ActivationFeed::start_cursor() const {
  std::lock_guard<std::mutex> lock(store_mutex_);
  return start_cursor_;
}

data::MixingBufferFill ActivationFeed::fill() const { return current()->buffer().fill(); }

absl::Status ActivationFeed::generation_status() const { return current()->background_status(); }

}  // namespace sae::activation_server
