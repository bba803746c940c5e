// Test support: a nanoGPT .bin of random documents, for runs that need tokens but no text.
#ifndef SAE_TESTS_SUPPORT_RANDOM_TOKENS_H_
#define SAE_TESTS_SUPPORT_RANDOM_TOKENS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace sae::support {

// Writes to `path` `documents` random documents of 10 to 69 ids below 1000, each ended by
// <|endoftext|> (50256); the same file for the same seed.
absl::Status WriteRandomTokens(const std::string& path, int documents, uint32_t seed);

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_RANDOM_TOKENS_H_
