// GPT-2's pre-tokenisation: the split of text into the pieces that byte-level BPE encodes one at a
// time. The pattern is OpenAI's, unchanged in meaning:
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// compiled by PCRE2 in UTF mode with Unicode properties and JIT. \s means Unicode White_Space,
// as in the Python `regex` module that OpenAI's encoder.py uses, in tiktoken and in Hugging
// Face's tokenizers. PCRE2's own \s (PCRE2_UCP) also matches U+180E, so the pattern PCRE2 is
// given spells \s as \p{White_Space}. Letters and numbers are those of PCRE2's Unicode tables
// (Unicode 14 in PCRE2 10.42): characters assigned later count as neither.
#ifndef SAE_CORE_TOKENIZER_PRE_TOKENIZER_H_
#define SAE_CORE_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct pcre2_real_code_8;

namespace sae::tokenizer {

// The pattern as OpenAI publishes it.
inline constexpr absl::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
// U+10FFFF).
bool IsValidUtf8(absl::string_view text);

// Thread-safe: Split may be called from many threads at once.
class PreTokenizer {
 public:
  // Compiles the pattern. Internal when PCRE2 lacks UTF or Unicode-property support.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create();

  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;
  ~PreTokenizer();

  // Calls `on_piece` with each piece of `text` in order; the pieces are non-empty and
  // concatenate to exactly `text`. `text` may hold any bytes: a byte that is not part of
  // well-formed UTF-8 splits as U+FFFD would (as text decoded with replacement does), while the
  // piece keeps the original byte.
  void Split(absl::string_view text, absl::FunctionRef<void(absl::string_view)> on_piece) const;

 private:
  PreTokenizer(pcre2_real_code_8* code, bool jit) : code_(code), jit_(jit) {}

  // Split of `subject` (well-formed UTF-8), reporting the same byte ranges of `original`.
  void SplitValid(absl::string_view subject, absl::string_view original,
                  absl::FunctionRef<void(absl::string_view)> on_piece) const;

  pcre2_real_code_8* code_;
  bool jit_;  // compiled by the JIT: match with pcre2_jit_match
};

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_PRE_TOKENIZER_H_
