// Byte-level BPE: the merge loop that turns one pre-tokenised piece (raw bytes) into token ids.
#ifndef SAE_CORE_TOKENIZER_BPE_MODEL_H_
#define SAE_CORE_TOKENIZER_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/bpe_vocabulary.h"

namespace sae::tokenizer {

// Immutable after construction, so thread-safe.
class BpeModel {
 public:
  // Pieces at most this long merge by repeated scans; longer ones through a heap, which keeps
  // a piece of n bytes at O(n log n).
  static constexpr size_t kMaxScannedPiece = 48;

  // `vocabulary` as ParseVocabularyJson and ParseMerges produce it (every byte has a token; every
  // merge names tokens).
  explicit BpeModel(BpeVocabulary vocabulary);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // When `piece` is one byte, or the bytes of a token that the merge loop rebuilds intact (all of
  // GPT-2's tokens but "<|endoftext|>"), appends that token's id to `ids` and returns true: what
  // Merge would append, found by one lookup. Otherwise appends nothing and returns false.
  bool EncodeWhole(absl::string_view piece, std::vector<int32_t>* ids) const;

  // Appends the ids of `piece` to `ids` by the BPE merge loop: starting from one token per byte,
  // repeatedly merge the adjacent pair of lowest rank (leftmost among equals) until no adjacent
  // pair has a merge. Uses the heap when `piece` is longer than `max_scanned_piece`.
  void Merge(absl::string_view piece, std::vector<int32_t>* ids,
             size_t max_scanned_piece = kMaxScannedPiece) const;

  // The id of the token whose bytes are exactly `bytes`, if there is one.
  std::optional<int32_t> FindToken(absl::string_view bytes) const;

  // The raw bytes of token `id`, which must be in [0, size()).
  absl::string_view TokenBytes(int32_t id) const {
    return absl::string_view(token_bytes_)
        .substr(token_offsets_[id], token_offsets_[id + 1] - token_offsets_[id]);
  }

  int32_t size() const { return static_cast<int32_t>(token_offsets_.size() - 1); }

 private:
  // What merging an adjacent pair gives.
  struct PairMerge {
    int32_t rank;
    int32_t merged;
  };
  static constexpr int32_t kNoRank = INT32_MAX;

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  PairMerge FindMerge(int32_t left, int32_t right) const {
    auto found = pair_merges_.find(PairKey(left, right));
    return found == pair_merges_.end() ? PairMerge{kNoRank, -1} : found->second;
  }

  void MergeByScanning(absl::string_view piece, std::vector<int32_t>* ids) const;
  void MergeWithHeap(absl::string_view piece, std::vector<int32_t>* ids) const;

  std::array<int32_t, 256> byte_ids_;
  absl::flat_hash_map<uint64_t, PairMerge> pair_merges_;
  absl::flat_hash_map<std::string, int32_t> ids_;  // token bytes -> id
  // Per id, 1 when the merge loop rebuilds the token's bytes as the token itself, so Encode may
  // return it whole.
  std::vector<uint8_t> encodes_whole_;
  // All token bytes back to back; token i is [token_offsets_[i], token_offsets_[i + 1]).
  std::string token_bytes_;
  std::vector<uint32_t> token_offsets_;
};

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_BPE_MODEL_H_
