// The real GPT-2 tokenizer for the fuzz targets that need one, loaded once from
// DefaultTokenizerDir() (scripts/fetch-assets.sh installs the files). Aborts when it is missing.
#ifndef SAE_FUZZ_FUZZ_TOKENIZER_H_
#define SAE_FUZZ_FUZZ_TOKENIZER_H_

#include "absl/strings/str_cat.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "fuzz/scratch_dir.h"

namespace sae::fuzz {

inline const tokenizer::Gpt2Tokenizer& FuzzTokenizer() {
  static const tokenizer::Gpt2Tokenizer* loaded_tokenizer = [] {
    auto loaded = tokenizer::Gpt2Tokenizer::Load(tokenizer::DefaultTokenizerDir());
    if (!loaded.ok()) {
      PropertyFailed(absl::StrCat(loaded.status().ToString(), " (run scripts/fetch-assets.sh)"));
    }
    return loaded->release();
  }();
  return *loaded_tokenizer;
}

}  // namespace sae::fuzz

#endif  // SAE_FUZZ_FUZZ_TOKENIZER_H_
