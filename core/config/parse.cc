// ParseRunConfig, LoadRunConfig and the --set overrides: YAML in, typed keys out.
#include <map>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/config/field.h"
#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "yaml-cpp/yaml.h"

namespace sae::config {
namespace {

using internal::Field;
using internal::ScalarValue;

absl::string_view NodeKindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "a scalar";
  }
}

// Plain scalars carry the non-specific tag "?"; quoted and block scalars carry "!"; anything
// else was tagged explicitly (!!str ...) and is read as text.
ScalarValue ToScalarValue(const YAML::Node& node) {
  ScalarValue value;
  if (!node.IsDefined() || node.IsNull()) {
    value.is_null = true;
    return value;
  }
  value.text = node.Scalar();
  value.is_quoted = node.Tag() != "?";
  return value;
}

std::string UnknownKeyMessage(absl::string_view key, bool value_is_mapping) {
  std::string message = "unknown key;";
  std::string closest = ClosestKey(key);
  if (!closest.empty()) absl::StrAppend(&message, " did you mean ", closest, "?");
  if (value_is_mapping) {
    absl::StrAppend(&message, " run.yaml is a flat mapping: write each key at the top level.");
  }
  absl::StrAppend(&message, " docs/config.md lists every key.");
  return message;
}

// Reads one key's value into `config`, whose source already records the key's line.
absl::Status SetKey(const Field& field, const YAML::Node& value, RunConfig& config) {
  if (field.spec.type == KeyType::kIntegerList && value.IsSequence()) {
    // A list key reads its items as one scalar "a, b, c" (Codec<std::vector<int64_t>>).
    internal::ScalarValue items;
    for (const YAML::Node& item : value) {
      if (!item.IsScalar()) {
        return ConfigKeyError(config, field.spec.name,
                              absl::StrCat("expected ", field.spec.allowed, ", got a nested ",
                                           NodeKindName(item)));
      }
      absl::StrAppend(&items.text, items.text.empty() ? "" : ", ", item.Scalar());
    }
    absl::Status status = field.parse(items, config);
    if (!status.ok()) return ConfigKeyError(config, field.spec.name, status.message());
    return absl::OkStatus();
  }
  if (value.IsDefined() && !value.IsNull() && !value.IsScalar()) {
    return ConfigKeyError(
        config, field.spec.name,
        absl::StrCat("expected ", field.spec.allowed, ", got ", NodeKindName(value)));
  }
  absl::Status status = field.parse(ToScalarValue(value), config);
  if (!status.ok()) return ConfigKeyError(config, field.spec.name, status.message());
  return absl::OkStatus();
}

// A config that writes d_sae but not expansion_factor sizes the SAE by d_sae alone.
void LetDSaeDecideWidth(RunConfig& config) {
  if (config.d_sae && !config.source.Given("expansion_factor")) config.expansion_factor.reset();
}

}  // namespace

absl::StatusOr<RunConfig> ParseRunConfig(absl::string_view yaml_text,
                                         absl::string_view source_name) {
  return ParseRunConfig(yaml_text, source_name, {});
}

absl::StatusOr<RunConfig> ParseRunConfig(absl::string_view yaml_text,
                                         absl::string_view source_name,
                                         const std::vector<std::string>& overrides) {
  RunConfig config;
  config.source.name = std::string(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(source_name, ":", error.mark.line + 1, ": invalid YAML: ", error.msg));
  }
  if (root.IsNull()) {  // an empty file: every key at its default
    SAE_RETURN_IF_ERROR(ApplyOverrides(config, overrides));
    return config;
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ":", root.Mark().line + 1,
        ": expected a mapping of `key: value` lines at the top level, got ", NodeKindName(root)));
  }
  for (const auto& entry : root) {
    const YAML::Node& key_node = entry.first;
    int line = key_node.Mark().line + 1;
    if (!key_node.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ":", line, ": keys must be plain names such as lr"));
    }
    const std::string& key = key_node.Scalar();
    auto [previous, inserted] = config.source.lines.emplace(key, line);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(source_name, ":", line, ": ", key,
                                                     ": given twice, on lines ", previous->second,
                                                     " and ", line, "; keep one"));
    }
    const Field* field = internal::FindField(key);
    if (field == nullptr) {
      return ConfigKeyError(config, key, UnknownKeyMessage(key, entry.second.IsMap()));
    }
    SAE_RETURN_IF_ERROR(SetKey(*field, entry.second, config));
  }
  LetDSaeDecideWidth(config);
  // Overrides come before the checks across keys, so --set can supply a required key.
  SAE_RETURN_IF_ERROR(ApplyOverrides(config, overrides));
  return config;
}

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path) {
  return LoadRunConfig(path, {});
}

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path,
                                        const std::vector<std::string>& overrides) {
  SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseRunConfig(text, path, overrides);
}

absl::Status ApplyOverride(RunConfig& config, absl::string_view assignment) {
  config.source.resolved_hook.reset();  // the config must be resolved again
  size_t equals = assignment.find('=');
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--set expects key=value (for example --set lr=4e-4), got '", assignment, "'"));
  }
  std::string key(absl::StripAsciiWhitespace(assignment.substr(0, equals)));
  absl::string_view text = assignment.substr(equals + 1);
  RunConfig updated = config;
  updated.source.lines[key] = RunConfigSource::kOverrideLine;
  const Field* field = internal::FindField(key);
  if (field == nullptr) {
    return ConfigKeyError(updated, key, UnknownKeyMessage(key, /*value_is_mapping=*/false));
  }
  YAML::Node value;
  bool is_yaml = true;
  try {
    value = YAML::Load(std::string(text));
  } catch (const YAML::Exception&) {
    is_yaml = false;
  }
  // A string key takes text that YAML would read otherwise ("run_name=a: b") as it is.
  if (field->spec.type == KeyType::kString && (!is_yaml || value.IsMap() || value.IsSequence())) {
    value = YAML::Node(std::string(text));
    is_yaml = true;
  }
  if (!is_yaml) {
    return ConfigKeyError(updated, key,
                          absl::StrCat("expected ", field->spec.allowed, ", got '", text, "'"));
  }
  SAE_RETURN_IF_ERROR(SetKey(*field, value, updated));
  if (key == "d_sae") LetDSaeDecideWidth(updated);
  config = std::move(updated);
  return absl::OkStatus();
}

absl::Status ApplyOverrides(RunConfig& config, const std::vector<std::string>& assignments) {
  for (const std::string& assignment : assignments) {
    SAE_RETURN_IF_ERROR(ApplyOverride(config, assignment));
  }
  return ValidateRunConfig(config);
}

}  // namespace sae::config
