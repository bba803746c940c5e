// Internal to core/config: how each key of run.yaml is read from a YAML scalar, written back,
// converted to JSON and compared. One Field per KeySpec, in the same order.
#ifndef SAE_CORE_CONFIG_FIELD_H_
#define SAE_CORE_CONFIG_FIELD_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "core/model/hook_point.h"
#include "nlohmann/json.hpp"

namespace sae::config::internal {

// One YAML scalar as the parser saw it, independent of yaml-cpp.
struct ScalarValue {
  std::string text;        // the scalar's text without quotes
  bool is_null = false;    // plain `null`, `~` or nothing
  bool is_quoted = false;  // quoted or block scalar, or explicitly tagged: always a string
};

struct Field {
  KeySpec spec;
  // Stores `value` into the key's member, or InvalidArgument with a message that does not name
  // the key ("expected a number, got 'abc'"). Leaves `config` unchanged on error.
  std::function<absl::Status(const ScalarValue& value, RunConfig& config)> parse;
  // The member as one YAML scalar (re-parsable by `parse`).
  std::function<std::string(const RunConfig& config)> to_yaml;
  std::function<nlohmann::json(const RunConfig& config)> to_json;
  std::function<bool(const RunConfig& a, const RunConfig& b)> equal;
};

// ParseHookPoint (pass n_layer <= 0 to skip the layer check), rejecting hooks an SAE cannot
// train on: attention scores and patterns ([batch, head, query, key]) and LayerNorm scales (one
// value per token). InvalidArgument whose message names the hook and what is allowed.
absl::StatusOr<model::HookPoint> ParseTrainableHookPoint(absl::string_view name, int n_layer);

// Every field, in the order of RunConfigKeys().
const std::vector<Field>& Fields();

// The field for `name`, or nullptr.
const Field* FindField(absl::string_view name);

}  // namespace sae::config::internal

#endif  // SAE_CORE_CONFIG_FIELD_H_
