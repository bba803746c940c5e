// Reading GPT-2's vocabulary and merges files (vocab.json / encoder.json and merges.txt /
// vocab.bpe) into raw bytes, with errors that name the file and the line.
#ifndef SAE_CORE_TOKENIZER_BPE_VOCABULARY_H_
#define SAE_CORE_TOKENIZER_BPE_VOCABULARY_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sae::tokenizer {

// One line of the merges file: tokens `left` and `right` merge into token `merged`.
struct BpeMerge {
  int32_t left = 0;
  int32_t right = 0;
  int32_t merged = 0;
};

struct BpeVocabulary {
  std::vector<std::string> tokens;                // id -> the raw bytes the token stands for
  absl::flat_hash_map<std::string, int32_t> ids;  // raw bytes -> id
  std::vector<BpeMerge> merges;                   // in rank order: merges[r] has rank r
  std::array<int32_t, 256> byte_ids{};            // id of the token of each single byte
};

// Fills `vocabulary->tokens`, `ids` and `byte_ids` from `json`, a JSON object from byte-level
// symbol to id, read from `path` (named in errors). InvalidArgument, naming the path, line and
// column, for malformed JSON, a symbol outside the byte-level alphabet, a duplicate symbol or id,
// or an id that is not an integer in [0, 2^24). InvalidArgument naming the path for ids that do
// not run from 0 to N-1 without gaps, and for a byte without a token of its own.
absl::Status ParseVocabularyJson(absl::string_view json, absl::string_view path,
                                 BpeVocabulary* vocabulary);

// Fills `vocabulary->merges` from `text`, lines of two byte-level symbols separated by one space,
// in rank order, read from `path` (named in errors). A first line starting with "#version" and
// empty lines are skipped; a trailing '\r' is ignored. InvalidArgument, naming the path and line,
// for a line that is not two symbols, a symbol outside the byte-level alphabet, a symbol or a
// merged result missing from the vocabulary, or a merge listed twice.
absl::Status ParseMerges(absl::string_view text, absl::string_view path, BpeVocabulary* vocabulary);

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_BPE_VOCABULARY_H_
