// The documents of one shard of a dataset, epoch after epoch.
#ifndef SAE_CORE_DATA_DOCUMENT_STREAM_H_
#define SAE_CORE_DATA_DOCUMENT_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/token_sequence.h"

namespace sae::data {

class FileDocumentReader;

// A place in a shard's documents: the epoch, the file, and an offset in that file's units
// (see DatasetFile). Ordered: a later place compares greater.
struct DocumentPosition {
  uint64_t epoch = 0;
  uint64_t file_index = 0;
  uint64_t offset = 0;

  friend bool operator==(const DocumentPosition& a, const DocumentPosition& b) {
    return a.epoch == b.epoch && a.file_index == b.file_index && a.offset == b.offset;
  }
  friend bool operator<(const DocumentPosition& a, const DocumentPosition& b) {
    if (a.epoch != b.epoch) return a.epoch < b.epoch;
    if (a.file_index != b.file_index) return a.file_index < b.file_index;
    return a.offset < b.offset;
  }
};

// One document: its ids (text tokenised without BOS; token data as stored, delimiters removed)
// and where it starts. Opening a DocumentStream at `position` reads this document first.
struct Document {
  DocumentPosition position;
  TokenSequence tokens;
};

// Reads the documents of shard `shard_index` of `shard_count`: the documents whose first unit
// lies in Dataset::RangeOfShard and that are not held out (Dataset::IsHeldOut), in file order;
// or, for Dataset::kHeldOutShard, the held-out documents of the whole dataset. After the last one
// the shard starts a new epoch at its first document, counts it and logs a warning. Not
// thread-safe; one stream per thread.
class DocumentStream {
 public:
  // A stream at the start of epoch 0. `shard_index` may be Dataset::kHeldOutShard, the
  // held-out documents. InvalidArgument when shard_index >= shard_count (and is not
  // kHeldOutShard), the shard's range is empty (more shards than units of data), or
  // kHeldOutShard is asked of a dataset whose held_out_fraction is 0.
  static absl::StatusOr<std::unique_ptr<DocumentStream>> Open(
      std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count);

  // A stream that continues at `position`, which came from position() or Document::position of
  // a stream of the same dataset and shard. InvalidArgument when it cannot belong to the shard.
  static absl::StatusOr<std::unique_ptr<DocumentStream>> OpenAt(
      std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count,
      const DocumentPosition& position);

  ~DocumentStream();
  DocumentStream(const DocumentStream&) = delete;
  DocumentStream& operator=(const DocumentStream&) = delete;

  // The next document. A view in `document->tokens` stays valid until the next call.
  // FailedPrecondition when a whole epoch held no document (the shard owns only blank lines,
  // delimiters or held-out documents, or no document starts in its range: use fewer shards; or
  // no document is held out); the errors of the files
  // (malformed lines, ids outside the vocabulary) name the file and the line or offset.
  absl::Status Next(Document* document);

  // The next document of the current epoch, like Next; false at the epoch's end, where the
  // stream stays (Next then starts the next epoch), so one pass reads without a warning.
  absl::StatusOr<bool> NextOfThisEpoch(Document* document);

  // Where the next call to Next starts searching.
  const DocumentPosition& position() const { return position_; }

  const Dataset& dataset() const { return *dataset_; }
  uint32_t shard_index() const { return shard_index_; }
  uint32_t shard_count() const { return shard_count_; }

 private:
  DocumentStream(std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count,
                 ShardRange range);

  // The part of file `file_index` inside the shard's range, in the file's units.
  uint64_t LocalBegin(uint64_t file_index) const;
  uint64_t LocalEnd(uint64_t file_index) const;

  std::shared_ptr<const Dataset> dataset_;
  uint32_t shard_index_;
  uint32_t shard_count_;
  ShardRange range_;
  uint64_t first_file_ = 0;
  uint64_t last_file_ = 0;
  DocumentPosition position_;
  std::unique_ptr<FileDocumentReader> reader_;  // reads position_.file_index
  uint64_t documents_this_epoch_ = 0;
  bool epoch_read_from_start_ = false;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_DOCUMENT_STREAM_H_
