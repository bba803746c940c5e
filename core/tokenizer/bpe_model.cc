#include "core/tokenizer/bpe_model.h"

#include <algorithm>
#include <utility>

namespace sae::tokenizer {

BpeModel::BpeModel(BpeVocabulary vocabulary)
    : byte_ids_(vocabulary.byte_ids), ids_(std::move(vocabulary.ids)) {
  token_offsets_.reserve(vocabulary.tokens.size() + 1);
  token_offsets_.push_back(0);
  for (const std::string& token : vocabulary.tokens) {
    token_bytes_ += token;
    token_offsets_.push_back(static_cast<uint32_t>(token_bytes_.size()));
  }
  pair_merges_.reserve(vocabulary.merges.size());
  for (size_t rank = 0; rank < vocabulary.merges.size(); ++rank) {
    const BpeMerge& merge = vocabulary.merges[rank];
    pair_merges_.emplace(PairKey(merge.left, merge.right),
                         PairMerge{static_cast<int32_t>(rank), merge.merged});
  }
  encodes_whole_.assign(vocabulary.tokens.size(), 0);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < size(); ++id) {
    ids.clear();
    Merge(TokenBytes(id), &ids);
    encodes_whole_[id] = ids.size() == 1 && ids[0] == id;
  }
}

std::optional<int32_t> BpeModel::FindToken(absl::string_view bytes) const {
  auto found = ids_.find(bytes);
  if (found == ids_.end()) return std::nullopt;
  return found->second;
}

bool BpeModel::EncodeWhole(absl::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.size() == 1) {
    ids->push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return true;
  }
  auto found = ids_.find(piece);
  if (found == ids_.end() || !encodes_whole_[found->second]) return false;
  ids->push_back(found->second);
  return true;
}

void BpeModel::Merge(absl::string_view piece, std::vector<int32_t>* ids,
                     size_t max_scanned_piece) const {
  if (piece.empty()) return;
  if (piece.size() <= max_scanned_piece) {
    MergeByScanning(piece, ids);
  } else {
    MergeWithHeap(piece, ids);
  }
}

void BpeModel::MergeByScanning(absl::string_view piece, std::vector<int32_t>* ids) const {
  // symbols[i]: the token at position i; pairs[i]: the merge of symbols i and i + 1.
  const size_t n = piece.size();
  int32_t stack_symbols[kMaxScannedPiece];
  PairMerge stack_pairs[kMaxScannedPiece];
  thread_local std::vector<int32_t> heap_symbols;
  thread_local std::vector<PairMerge> heap_pairs;
  int32_t* symbols = stack_symbols;
  PairMerge* pairs = stack_pairs;
  if (n > kMaxScannedPiece) {
    heap_symbols.resize(n);
    heap_pairs.resize(n);
    symbols = heap_symbols.data();
    pairs = heap_pairs.data();
  }
  for (size_t i = 0; i < n; ++i) symbols[i] = byte_ids_[static_cast<uint8_t>(piece[i])];
  for (size_t i = 0; i + 1 < n; ++i) pairs[i] = FindMerge(symbols[i], symbols[i + 1]);

  size_t count = n;
  while (count > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < count; ++i) {
      if (pairs[i].rank < pairs[best].rank) best = i;
    }
    if (pairs[best].rank == kNoRank) break;
    symbols[best] = pairs[best].merged;
    std::copy(symbols + best + 2, symbols + count, symbols + best + 1);
    if (best + 2 < count) std::copy(pairs + best + 2, pairs + count - 1, pairs + best + 1);
    --count;
    if (best + 1 < count) pairs[best] = FindMerge(symbols[best], symbols[best + 1]);
    if (best > 0) pairs[best - 1] = FindMerge(symbols[best - 1], symbols[best]);
  }
  ids->insert(ids->end(), symbols, symbols + count);
}

void BpeModel::MergeWithHeap(absl::string_view piece, std::vector<int32_t>* ids) const {
  // A doubly linked list of symbols indexed by the position of their first byte, and a min-heap
  // of candidate merges. A candidate goes stale when either side has changed since it was
  // pushed; it is then skipped. A symbol's id never returns to an earlier value (every merge
  // lengthens it), so comparing ids detects every change.
  struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;  // position of the left symbol
    int32_t left_id;
    int32_t right_id;
    int32_t merged;
    // Min-heap order: lowest rank first, leftmost among equal ranks.
    bool operator<(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : left > other.left;
    }
  };
  const auto n = static_cast<int32_t>(piece.size());
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  symbols.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1};
  }
  auto push_candidate = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[left].next;
    if (right >= n) return;
    PairMerge merge = FindMerge(symbols[left].id, symbols[right].id);
    if (merge.rank == kNoRank) return;
    heap.push_back({merge.rank, left, symbols[left].id, symbols[right].id, merge.merged});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_candidate(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Candidate candidate = heap.back();
    heap.pop_back();
    Symbol& left = symbols[candidate.left];
    if (left.id != candidate.left_id || left.next >= n) continue;
    Symbol& right = symbols[left.next];
    if (right.id != candidate.right_id) continue;
    left.id = candidate.merged;
    right.id = -1;
    left.next = right.next;
    if (right.next < n) symbols[right.next].prev = candidate.left;
    push_candidate(left.prev);
    push_candidate(candidate.left);
  }
  for (int32_t i = 0; i < n; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace sae::tokenizer
