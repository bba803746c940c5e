#include "support/binaries.h"

#include <cstdlib>
#include <filesystem>

namespace sae::support {

std::string BuildDir() {
  if (const char* dir = std::getenv("SAE_BINARY_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::filesystem::canonical("/proc/self/exe").parent_path().parent_path().string();
}

std::string BinDir() { return BuildDir() + "/bin"; }

std::string BinaryPath(const std::string& name) { return BinDir() + "/" + name; }

std::string SaectlPath() { return BinaryPath("saectl"); }

std::string TestBinaryPath(const std::string& name) { return BuildDir() + "/tests/" + name; }

std::string SourceDir() {
  const char* dir = std::getenv("SAE_SOURCE_DIR");
  return dir != nullptr && *dir != '\0' ? dir : ".";
}

}  // namespace sae::support
