#include "core/wire/run_digest.h"

#include <cstdint>
#include <cstdio>

namespace sae::wire {

std::string RunConfigDigest(const config::RunConfig& config) {
  const std::string yaml = config::ToYaml(config);
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (unsigned char c : yaml) {
    hash ^= c;
    hash *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::string DefaultRunId(const config::RunConfig& config) {
  return config.run_name && !config.run_name->empty() ? *config.run_name : "run";
}

}  // namespace sae::wire
