// One shard of a dataset as an endless stream of contexts, resumable from a ShardCursor.
#ifndef SAE_CORE_DATA_CONTEXT_SHARD_H_
#define SAE_CORE_DATA_CONTEXT_SHARD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/context_packing.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "core/data/shard_cursor.h"

namespace sae::data {

// The contexts (rows of exactly context_size token ids) of shard `shard_index` of
// `shard_count`. Documents are packed per context_packing.h, except where the dataset's rows
// are contexts (Dataset::rows_are_contexts), which are used as they are, truncated to
// context_size. The S shards of a dataset own disjoint documents and together every document
// once per epoch; a shard that runs out of documents starts its next epoch (DocumentStream).
// Packing continues across the epoch boundary.
//
// cursor() after any number of Next calls resumes exactly: a shard opened with Resume(cursor)
// serves the same contexts the original would have served next. Not thread-safe.
class ContextShard {
 public:
  // The shard from its first context. InvalidArgument for a shard that does not exist or is
  // empty.
  static absl::StatusOr<std::unique_ptr<ContextShard>> Open(std::shared_ptr<const Dataset> dataset,
                                                            uint32_t shard_index,
                                                            uint32_t shard_count);

  // The shard from `cursor`. InvalidArgument when the cursor belongs to other data (its
  // fingerprint differs) or does not point into this dataset.
  static absl::StatusOr<std::unique_ptr<ContextShard>> Resume(
      std::shared_ptr<const Dataset> dataset, const ShardCursor& cursor);

  ~ContextShard();
  ContextShard(const ContextShard&) = delete;
  ContextShard& operator=(const ContextShard&) = delete;

  // Replaces `*context` with the next context (context_size ids). Errors are those of
  // DocumentStream::Next; after an error the shard's state is unspecified.
  absl::Status Next(std::vector<int32_t>* context);

  // Replaces `*contexts` with the next `count` contexts, row-major [count, context_size].
  absl::Status NextBatch(int64_t count, std::vector<int32_t>* contexts);

  // The position of the context Next would return.
  ShardCursor cursor() const;

  // The epoch of cursor(): that of the next context, except right at the end of an epoch,
  // where the next context begins the following one.
  uint64_t epoch() const { return cursor().epoch; }

  int64_t context_size() const { return packing_.context_size; }

 private:
  ContextShard(std::shared_ptr<const Dataset> dataset, std::unique_ptr<DocumentStream> documents);

  std::shared_ptr<const Dataset> dataset_;
  std::unique_ptr<DocumentStream> documents_;
  PackingOptions packing_;
  bool rows_are_contexts_;
  Document document_;  // the document the next context starts in, when has_document_
  bool has_document_ = false;
  size_t consumed_ = 0;  // ids of document_ already in earlier contexts
  uint64_t contexts_served_ = 0;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_CONTEXT_SHARD_H_
