// Where scripts/fetch-assets.sh installs the files that tests, benchmarks and the quickstart use.
#ifndef SAE_CORE_TOKENIZER_CACHE_DIR_H_
#define SAE_CORE_TOKENIZER_CACHE_DIR_H_

#include <string>

namespace sae::tokenizer {

// $SAE_CACHE_DIR when set and non-empty, else ${XDG_CACHE_HOME:-$HOME/.cache}/sae-service: the
// same rule as scripts/fetch-assets.sh.
std::string SaeCacheDir();

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_CACHE_DIR_H_
