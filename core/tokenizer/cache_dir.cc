#include "core/tokenizer/cache_dir.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace sae::tokenizer {
namespace {

std::string Environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string HomeDir() {
  std::string home = Environment("HOME");
  if (!home.empty()) return home;
  const passwd* entry = getpwuid(getuid());
  return entry != nullptr && entry->pw_dir != nullptr ? std::string(entry->pw_dir) : ".";
}

}  // namespace

std::string SaeCacheDir() {
  std::string cache = Environment("SAE_CACHE_DIR");
  if (!cache.empty()) return cache;
  std::string xdg = Environment("XDG_CACHE_HOME");
  return (xdg.empty() ? HomeDir() + "/.cache" : xdg) + "/sae-service";
}

}  // namespace sae::tokenizer
