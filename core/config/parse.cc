// ParseRunConfig, LoadRunConfig and the --set overrides: YAML in, typed keys out.
#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/config/field.h"
#include "core/config/run_config.h"
#include "core/config/saelens_keys.h"
#include "core/config/schema.h"
#include "core/config/sweep.h"
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
    absl::StrAppend(&message,
                    " run.yaml is a flat mapping (besides SAELens 6's sae: and logger: blocks): "
                    "write each key at the top level.");
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

// Reads the keys of one file into a config, in either spelling (saelens_keys.h).
class KeyReader {
 public:
  explicit KeyReader(RunConfig& config) : config_(config) {}

  // SAELens 6's `sae:` or `logger:` block: each of its keys is read as "block.key".
  absl::Status ReadBlock(const std::string& block, int line, const YAML::Node& value) {
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(
          config_.source.name, ":", line, ": ", block, ": expected a mapping (SAELens 6's ",
          block, " block), got ", NodeKindName(value)));
    }
    for (const auto& entry : value) {
      int inner_line = entry.first.Mark().line + 1;
      if (!entry.first.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(config_.source.name, ":", inner_line,
                                                       ": keys must be plain names such as k"));
      }
      SAE_RETURN_IF_ERROR(Read(absl::StrCat(block, ".", entry.first.Scalar()), inner_line,
                               entry.second));
    }
    return absl::OkStatus();
  }

  // One key as written (`name`, "sae.k" inside a block) on `line`.
  absl::Status Read(const std::string& name, int line, const YAML::Node& value) {
    if (const Field* field = internal::FindField(name)) return Set(*field, name, line, value);
    std::optional<internal::PeerKey> peer = internal::FindPeerKey(name);
    if (!peer) {
      RunConfig located = config_;
      located.source.lines[name] = line;
      return ConfigKeyError(located, name, UnknownKeyMessage(name, value.IsMap()));
    }
    auto where = [&] { return absl::StrCat(config_.source.name, ":", line, ": ", name, ": "); };
    switch (peer->kind) {
      case internal::PeerKeyKind::kAlias:
        return Set(*internal::FindField(peer->key), name, line, value);
      case internal::PeerKeyKind::kProcessing: {
        absl::StatusOr<Processing> processing = internal::ProcessingFromKwargs(value);
        if (!processing.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where(), processing.status().message()));
        }
        return Set(*internal::FindField("processing"), name, line,
                   YAML::Node(std::string(ToString(*processing))));
      }
      case internal::PeerKeyKind::kRequired:
        if (peer->accepts(value)) return absl::OkStatus();
        return absl::InvalidArgumentError(
            absl::StrCat(where(), internal::ShortYaml(value), " is not supported: ", peer->note,
                         "; allowed: ", peer->accepted, " (SAELens 6 spelling, docs/config.md)"));
      case internal::PeerKeyKind::kNoEffect:
        if (!peer->accepts(value)) {
          config_.source.read_warnings.push_back(absl::StrCat(
              where(), internal::ShortYaml(value), " has no effect here: ", peer->note));
        }
        return absl::OkStatus();
      case internal::PeerKeyKind::kRecord:
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

 private:
  // Sets `field` from `value`, written as `name` on `line`. A key already written in the other
  // spelling must have the same value.
  absl::Status Set(const Field& field, const std::string& name, int line,
                   const YAML::Node& value) {
    const std::string& key = field.spec.name;
    auto previous = config_.source.lines.find(key);
    if (previous == config_.source.lines.end()) {
      config_.source.lines.emplace(key, line);
      if (name != key) config_.source.spellings[key] = name;
      return SetKey(field, value, config_);
    }
    auto spelling = config_.source.spellings.find(key);
    const std::string previous_name =
        spelling != config_.source.spellings.end() ? spelling->second : key;
    const int previous_line = previous->second;
    if (previous_name == name) {
      return absl::InvalidArgumentError(absl::StrCat(config_.source.name, ":", line, ": ", name,
                                                     ": given twice, on lines ", previous_line,
                                                     " and ", line, "; keep one"));
    }
    // Read the second spelling on its own and compare.
    RunConfig second = config_;
    second.source.lines[key] = line;
    second.source.spellings[key] = name;
    SAE_RETURN_IF_ERROR(SetKey(field, value, second));
    if (field.equal(second, config_)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        config_.source.name, ":", line, ": ", name, ": ", field.to_yaml(second),
        " contradicts ", previous_name, ": ", field.to_yaml(config_), " on line ", previous_line,
        " (the same key, ", key, ", in SAELens 6's and the seed's spelling); keep one"));
  }

  RunConfig& config_;
};

// `hook_points: [a, b]` (or SAELens's `hook_names:` as a list): several hooks of the model.
absl::Status ReadHookPoints(const std::string& name, int line, const YAML::Node& value,
                            RunConfig& config) {
  auto where = [&] { return absl::StrCat(config.source.name, ":", line, ": ", name, ": "); };
  if (config.source.Given("hook_points")) {
    return absl::InvalidArgumentError(absl::StrCat(where(), "given twice; keep one"));
  }
  if (!value.IsSequence() || value.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(),
        "expected a list of hooks, for example [blocks.2.hook_resid_pre, "
        "blocks.6.hook_resid_pre]",
        value.IsMap() ? " (SAELens's mapping from SAE names to hooks is not read: list the "
                        "hooks, and sweep: the keys that differ)"
                      : ""));
  }
  config.source.lines["hook_points"] = line;
  if (name != "hook_points") config.source.spellings["hook_points"] = name;
  for (const YAML::Node& item : value) {
    if (!item.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), "expected hook names, got ", NodeKindName(item)));
    }
    absl::StatusOr<model::HookPoint> hook = internal::ParseTrainableHookPoint(item.Scalar(), 0);
    if (!hook.ok())
      return absl::InvalidArgumentError(absl::StrCat(where(), hook.status().message()));
    config.hook_points.push_back(item.Scalar());
  }
  return absl::OkStatus();
}

// `sweep:` a mapping from keys to lists of values; each value is read as the key reads it and
// kept in its canonical form.
absl::Status ReadSweep(int line, const YAML::Node& value, RunConfig& config) {
  auto where = [&](int at) { return absl::StrCat(config.source.name, ":", at, ": sweep"); };
  if (config.source.Given("sweep")) {
    return absl::InvalidArgumentError(absl::StrCat(where(line), ": given twice; keep one"));
  }
  if (!value.IsMap() || value.size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(line),
                     ": expected a mapping from keys to lists of values, for "
                     "example l1_coefficient: [4e-5, 8e-5]"));
  }
  config.source.lines["sweep"] = line;
  for (const auto& entry : value) {
    const int key_line = entry.first.Mark().line + 1;
    const std::string key = entry.first.Scalar();
    std::string canonical_key = key;
    if (internal::FindField(key) == nullptr) {  // SAELens 6's name of a key (sae.k, ...)
      std::optional<internal::PeerKey> peer = internal::FindPeerKey(key);
      if (peer && peer->kind == internal::PeerKeyKind::kAlias) canonical_key = peer->key;
    }
    const internal::Field* field = internal::FindField(canonical_key);
    const std::string why = WhyNotSweepable(canonical_key);
    if (field == nullptr || !why.empty()) {
      std::string closest = field == nullptr ? ClosestKey(key) : "";
      return absl::InvalidArgumentError(
          absl::StrCat(where(key_line), ".", key, ": cannot be swept: ", why,
                       closest.empty() ? "" : absl::StrCat(" (did you mean ", closest, "?)")));
    }
    for (const SweepDimension& previous : config.sweep) {
      if (previous.key == canonical_key) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(key_line), ".", key, ": swept twice; keep one"));
      }
    }
    if (!entry.second.IsSequence() || entry.second.size() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where(key_line), ".", key, ": expected a list of values, for example [4e-5, 8e-5]"));
    }
    SweepDimension dimension{canonical_key, {}};
    config.source.lines["sweep." + canonical_key] = key_line;
    for (const YAML::Node& item : entry.second) {
      if (!item.IsScalar() && !item.IsNull()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(key_line), ".", key, ": expected values, got ", NodeKindName(item)));
      }
      RunConfig scratch;
      absl::Status parsed = field->parse(ToScalarValue(item), scratch);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(item.Mark().line + 1), ".", key, ": ", parsed.message()));
      }
      std::string text = field->to_yaml(scratch);
      if (std::find(dimension.values.begin(), dimension.values.end(), text) !=
          dimension.values.end()) {
        return absl::InvalidArgumentError(absl::StrCat(where(key_line), ".", key, ": ", text,
                                                       " is listed twice; list each value once"));
      }
      dimension.values.push_back(std::move(text));
    }
    config.sweep.push_back(std::move(dimension));
  }
  return absl::OkStatus();
}

// With hook_points:, hook_point holds the first of them; a hook_point written beside them must
// be one of them.
absl::Status SettleHookPoint(RunConfig& config) {
  if (config.hook_points.empty()) return absl::OkStatus();
  if (config.source.Given("hook_point") &&
      std::find(config.hook_points.begin(), config.hook_points.end(), config.hook_point) ==
          config.hook_points.end()) {
    return ConfigKeyError(config, "hook_point",
                          absl::StrCat(config.hook_point,
                                       " is not among hook_points; remove "
                                       "hook_point (hook_points lists every "
                                       "hook of the run)"));
  }
  config.hook_point = config.hook_points.front();
  return absl::OkStatus();
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
  KeyReader reader(config);
  bool saelens6_sae_block = false;
  for (const auto& entry : root) {
    const YAML::Node& key_node = entry.first;
    int line = key_node.Mark().line + 1;
    if (!key_node.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ":", line, ": keys must be plain names such as lr"));
    }
    const std::string& key = key_node.Scalar();
    if (key == "sweep") {
      SAE_RETURN_IF_ERROR(ReadSweep(line, entry.second, config));
      continue;
    }
    if (key == "hook_points" || (key == "hook_names" && entry.second.IsSequence())) {
      SAE_RETURN_IF_ERROR(ReadHookPoints(key, line, entry.second, config));
      continue;
    }
    if (internal::IsPeerBlock(key) && internal::FindField(key) == nullptr) {
      SAE_RETURN_IF_ERROR(reader.ReadBlock(key, line, entry.second));
      saelens6_sae_block = saelens6_sae_block || key == "sae";
      continue;
    }
    SAE_RETURN_IF_ERROR(reader.Read(key, line, entry.second));
  }
  // SAELens 6 has no b_dec_init_method: its SAEs start with b_dec at zero. A config in its
  // spelling (an `sae:` block) means that unless it says otherwise.
  if (saelens6_sae_block && !config.source.Given("b_dec_init_method")) {
    config.b_dec_init_method = BDecInitMethod::kZeros;
  }
  LetDSaeDecideWidth(config);
  SAE_RETURN_IF_ERROR(SettleHookPoint(config));
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
  const Field* field = internal::FindField(key);
  if (field == nullptr) {  // SAELens 6's name of a key: --set hook_name=..., --set sae.k=32
    std::optional<internal::PeerKey> peer = internal::FindPeerKey(key);
    if (peer && peer->kind == internal::PeerKeyKind::kAlias) {
      field = internal::FindField(peer->key);
      updated.source.spellings[peer->key] = key;
      key = peer->key;
    }
  } else {
    updated.source.spellings.erase(key);
  }
  updated.source.lines[key] = RunConfigSource::kOverrideLine;
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
