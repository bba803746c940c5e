// ToYaml and ToJson: the forms a config is shipped (gRPC) and stored (RocksDB) in.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/codec.h"
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
  // Many SAEs in one run (sweep.h); absent from a run of one SAE.
  if (!config.hook_points.empty() || !config.sweep.empty()) {
    absl::StrAppend(&yaml, "\n# Many SAEs in one run\n");
  }
  if (!config.hook_points.empty()) {
    std::vector<std::string> hooks;
    for (const std::string& hook : config.hook_points)
      hooks.push_back(internal::FormatString(hook));
    absl::StrAppend(&yaml, "hook_points: [", absl::StrJoin(hooks, ", "), "]\n");
  }
  if (!config.sweep.empty()) {
    absl::StrAppend(&yaml, "sweep:\n");
    for (const SweepDimension& dimension : config.sweep) {
      absl::StrAppend(&yaml, "  ", dimension.key, ": [", absl::StrJoin(dimension.values, ", "),
                      "]\n");
    }
  }
  return yaml;
}

nlohmann::json ToJson(const RunConfig& config) {
  nlohmann::json json = nlohmann::json::object();
  for (const internal::Field& field : internal::Fields()) {
    json[field.spec.name] = field.to_json(config);
  }
  if (!config.hook_points.empty()) json["hook_points"] = config.hook_points;
  if (!config.sweep.empty()) {
    nlohmann::json sweep = nlohmann::json::object();
    for (const SweepDimension& dimension : config.sweep) {
      // Each value as its key's canonical YAML text (SweepDimension).
      sweep[dimension.key] = dimension.values;
    }
    json["sweep"] = sweep;
  }
  return json;
}

}  // namespace sae::config
