#include "support/random_tokens.h"

#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/token_file_format.h"
#include "core/util/files.h"

namespace sae::support {

absl::Status WriteRandomTokens(const std::string& path, int documents, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> tokens;
  for (int doc = 0; doc < documents; ++doc) {
    const int length = 10 + static_cast<int>(rng() % 60);
    for (int i = 0; i < length; ++i) tokens.push_back(static_cast<int32_t>(rng() % 1000));
    tokens.push_back(50256);
  }
  absl::StatusOr<std::string> bytes = data::EncodeNanoGptBin(tokens);
  if (!bytes.ok()) return bytes.status();
  return WriteFileAtomically(path, *bytes);
}

}  // namespace sae::support
