// The run.yaml schema as data: one entry per key, in the order of docs/config.md.
//
// docs/config.md, `saectl` help and tests read this table; the defaults in it are rendered from
// a default-constructed RunConfig, so they cannot drift from the struct.
#ifndef SAE_CORE_CONFIG_SCHEMA_H_
#define SAE_CORE_CONFIG_SCHEMA_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace sae::config {

enum class KeyType {
  kString,
  kInteger,  // 64-bit; 2_000_000 and 2e6 are accepted when exact
  kNumber,   // finite double
  kBoolean,  // true | false
  kChoice,   // one of KeySpec::choices
  kIntegerList,  // a YAML sequence of integers, e.g. [64, 256, 1024]
};

// Whether a key comes from mats_sae_training's LanguageModelSAERunnerConfig (same name and
// meaning) or was added by this service.
enum class KeyOrigin { kSeed, kOurs };

struct KeySpec {
  std::string name;
  KeyType type = KeyType::kString;
  // True when null is allowed; `description` says what null means.
  bool nullable = false;
  // The default as YAML text, exactly as ToYaml writes it: "0.0003", "null", "cpu".
  std::string default_text;
  // The allowed values in words: "integer >= 1", "number > 0", "standard, topk",
  // "integer >= 0 or null", ...
  std::string allowed;
  // For kChoice: the canonical values.
  std::vector<std::string> choices;
  // Section of docs/config.md: one of RunConfigGroups().
  std::string group;
  // One line: what the key does.
  std::string description;
  KeyOrigin origin = KeyOrigin::kSeed;
};

// Every key, grouped, in documentation order.
const std::vector<KeySpec>& RunConfigKeys();

// The groups of RunConfigKeys() in order ("Model and hook point", "Data", ...).
const std::vector<std::string>& RunConfigGroups();

// The entry for `name`, or nullptr.
const KeySpec* FindKey(absl::string_view name);

// The known key closest to `name` by edit distance when it is close enough to be a plausible
// typo (or differs only in case), else "".
std::string ClosestKey(absl::string_view name);

// "string", "integer", "number", "boolean", "choice".
absl::string_view KeyTypeName(KeyType type);

}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_SCHEMA_H_
