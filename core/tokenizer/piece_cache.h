// A bounded, thread-safe cache from pre-tokenised piece to its token ids.
#ifndef SAE_CORE_TOKENIZER_PIECE_CACHE_H_
#define SAE_CORE_TOKENIZER_PIECE_CACHE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

namespace sae::tokenizer {

// Split into shards, each behind its own reader/writer lock, so threads encoding different
// pieces rarely wait for one another. Memory stays bounded: a shard that reaches its share of
// the capacity is emptied before it takes another entry.
class PieceCache {
 public:
  // Holds at most about `capacity` pieces, each at most `max_piece_bytes` long (longer pieces
  // are not cached).
  PieceCache(size_t capacity, size_t max_piece_bytes);

  PieceCache(const PieceCache&) = delete;
  PieceCache& operator=(const PieceCache&) = delete;

  // When `piece` is cached, appends its ids to `ids` and returns true; otherwise returns false.
  bool Lookup(absl::string_view piece, std::vector<int32_t>* ids) const;

  // Remembers `ids` as the ids of `piece`.
  void Insert(absl::string_view piece, absl::Span<const int32_t> ids);

 private:
  static constexpr size_t kShards = 64;

  struct Shard {
    mutable absl::Mutex mutex;
    absl::flat_hash_map<std::string, absl::InlinedVector<int32_t, 6>> entries
        ABSL_GUARDED_BY(mutex);
  };

  Shard& ShardOf(absl::string_view piece) const;

  const size_t shard_capacity_;
  const size_t max_piece_bytes_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_PIECE_CACHE_H_
