#include "fuzz/scratch_dir.h"

#include <filesystem>
#include <fstream>
#include <system_error>

namespace sae::fuzz {
namespace {

std::string* scratch = nullptr;

void RemoveScratch() {
  std::error_code error;
  if (scratch != nullptr) std::filesystem::remove_all(*scratch, error);
}

}  // namespace

const std::string& ScratchDir() {
  if (scratch == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sae-fuzz-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) PropertyFailed("cannot create " + pattern);
    scratch = new std::string(pattern);
    std::atexit(RemoveScratch);
  }
  return *scratch;
}

std::string WriteScratchFile(const std::string& name, std::string_view bytes) {
  std::string path = ScratchDir() + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) PropertyFailed("cannot write " + path);
  return path;
}

void EmptyFolder(const std::string& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::filesystem::remove_all(entry.path(), error);
  }
}

}  // namespace sae::fuzz
