// ToYaml and ToJson: the forms a config is shipped (gRPC) and stored (RocksDB) in.
#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/field.h"
#include "core/config/run_config.h"

namespace sae::config {

std::string ToYaml(const RunConfig& config) {
  std::string yaml;
  std::string group;
  for (const internal::Field& field : internal::Fields()) {
    if (field.spec.group != group) {
      group = field.spec.group;
      absl::StrAppend(&yaml, yaml.empty() ? "" : "\n", "# ", group, "\n");
    }
    absl::StrAppend(&yaml, field.spec.name, ": ", field.to_yaml(config), "\n");
  }
  return yaml;
}

nlohmann::json ToJson(const RunConfig& config) {
  nlohmann::json json = nlohmann::json::object();
  for (const internal::Field& field : internal::Fields()) {
    json[field.spec.name] = field.to_json(config);
  }
  return json;
}

}  // namespace sae::config
