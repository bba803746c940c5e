// GPT-2 byte-level BPE tokenizer (the tokenizer of Hugging Face's GPT2TokenizerFast / OpenAI's
// gpt-2 encoder.py), loaded from the real vocabulary and merges files.
#ifndef SAE_CORE_TOKENIZER_GPT2_TOKENIZER_H_
#define SAE_CORE_TOKENIZER_GPT2_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sae::tokenizer {

inline constexpr int32_t kEndOfText = 50256;  // "<|endoftext|>": GPT-2's BOS and EOS

// Thread-safe after Load: Encode and Decode may be called from many threads at once.
class Gpt2Tokenizer {
 public:
  // Loads from a folder holding vocab.json + merges.txt (Hugging Face names) or
  // encoder.json + vocab.bpe (OpenAI names). NotFound names the folder and both name pairs;
  // InvalidArgument names the file and line of a malformed entry.
  static absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> Load(const std::string& folder);

  virtual ~Gpt2Tokenizer() = default;

  // Token ids of `text` (arbitrary bytes: invalid UTF-8 is encoded byte-exactly).
  // "<|endoftext|>" in the text becomes the single token 50256.
  // A byte that is not part of well-formed UTF-8 splits from its neighbours as U+FFFD would and
  // keeps its own value, so Decode(Encode(text)) == text for any bytes.
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;

  // The exact bytes of `tokens`. InvalidArgument for an id outside the vocabulary.
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> tokens) const = 0;

  // Number of ids (50257 for GPT-2).
  virtual int32_t vocab_size() const = 0;
};

// The folder that tests, benchmarks and saectl load the GPT-2 files from: $SAE_TOKENIZER_DIR when
// set and non-empty, else SaeCacheDir() + "/gpt2-tokenizer" (cache_dir.h: $SAE_CACHE_DIR, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/sae-service), where scripts/fetch-assets.sh installs them.
std::string DefaultTokenizerDir();

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_GPT2_TOKENIZER_H_
