#include "core/tokenizer/piece_cache.h"

#include <algorithm>

#include "absl/hash/hash.h"

namespace sae::tokenizer {

PieceCache::PieceCache(size_t capacity, size_t max_piece_bytes)
    : shard_capacity_(std::max<size_t>(1, capacity / kShards)), max_piece_bytes_(max_piece_bytes) {}

PieceCache::Shard& PieceCache::ShardOf(absl::string_view piece) const {
  // The high bits pick the shard; the map inside uses the low ones.
  size_t hash = absl::Hash<absl::string_view>{}(piece);
  return shards_[(hash >> 32) % kShards];
}

bool PieceCache::Lookup(absl::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.size() > max_piece_bytes_) return false;
  Shard& shard = ShardOf(piece);
  absl::ReaderMutexLock lock(&shard.mutex);
  auto found = shard.entries.find(piece);
  if (found == shard.entries.end()) return false;
  ids->insert(ids->end(), found->second.begin(), found->second.end());
  return true;
}

void PieceCache::Insert(absl::string_view piece, absl::Span<const int32_t> ids) {
  if (piece.size() > max_piece_bytes_) return;
  Shard& shard = ShardOf(piece);
  absl::MutexLock lock(&shard.mutex);
  if (shard.entries.size() >= shard_capacity_) shard.entries.clear();
  shard.entries.try_emplace(piece, ids.begin(), ids.end());
}

}  // namespace sae::tokenizer
