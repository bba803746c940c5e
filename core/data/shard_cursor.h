// Where a shard's stream of contexts stands: a few bytes that resume it exactly.
#ifndef SAE_CORE_DATA_SHARD_CURSOR_H_
#define SAE_CORE_DATA_SHARD_CURSOR_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sae::data {

// The position of the next context of a ContextShard. The context starts in the document found
// at or after `offset` of file `file_index` in epoch `epoch`, after its first
// `tokens_into_document` ids (non-zero when the context continues a document that overflowed
// the previous one). A copyable value; ToBytes is about 20 bytes.
//
// Data never rewinds: a service keeps the furthest cursor it reported (IsAfter) and resumes
// from it, so no context is served twice.
struct ShardCursor {
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  uint64_t dataset_fingerprint = 0;  // Dataset::fingerprint of the data it belongs to
  uint64_t epoch = 0;
  uint64_t file_index = 0;
  uint64_t offset = 0;  // in the file's units (DatasetFile)
  uint64_t tokens_into_document = 0;
  uint64_t contexts_served = 0;  // contexts the shard served before this one, over all epochs

  // A compact serialisation: a version byte, then varints and the fingerprint.
  std::string ToBytes() const;

  // The cursor of ToBytes. InvalidArgument when `bytes` are truncated, carry an unknown
  // version or describe an impossible shard.
  static absl::StatusOr<ShardCursor> FromBytes(std::string_view bytes);

  // Whether this cursor lies further along the same shard than `other` (later epoch, file,
  // offset or token). Cursors of different shards or datasets are not ordered: false.
  bool IsAfter(const ShardCursor& other) const;

  // "shard 2/8 epoch 0 file 3 offset 1024 +17 (served 99)", for logs.
  std::string DebugString() const;

  friend bool operator==(const ShardCursor& a, const ShardCursor& b);
  friend bool operator!=(const ShardCursor& a, const ShardCursor& b) { return !(a == b); }
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_SHARD_CURSOR_H_
