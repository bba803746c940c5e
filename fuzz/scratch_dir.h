// A folder for the fuzz targets whose code under test reads files rather than bytes: one per
// process, under $TMPDIR, removed at exit.
#ifndef SAE_FUZZ_SCRATCH_DIR_H_
#define SAE_FUZZ_SCRATCH_DIR_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace sae::fuzz {

// The process's scratch folder (created on first use; aborts when it cannot be).
const std::string& ScratchDir();

// Writes `bytes` to ScratchDir()/name, replacing it, and returns the path. Aborts on failure.
std::string WriteScratchFile(const std::string& name, std::string_view bytes);

// Removes everything under `dir`, keeping `dir`.
void EmptyFolder(const std::string& dir);

// The input as bytes (Debian's Abseil has its own absl::string_view, distinct from std's).
inline std::string_view AsBytes(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}
inline absl::string_view AsAbslBytes(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// A property of the code under test does not hold: says which and aborts, so that libFuzzer
// keeps the input and the corpus replay fails.
[[noreturn]] inline void PropertyFailed(const std::string& what) {
  std::fprintf(stderr, "fuzz property failed: %s\n", what.c_str());
  std::abort();
}

}  // namespace sae::fuzz

#endif  // SAE_FUZZ_SCRATCH_DIR_H_
