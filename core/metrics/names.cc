#include "core/metrics/names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sae::metrics {
namespace {

bool IsLetterOrUnderscore(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

absl::Status ValidateMetricName(absl::string_view name) {
  bool valid = !name.empty();
  for (size_t i = 0; valid && i < name.size(); ++i) {
    char c = name[i];
    valid = IsLetterOrUnderscore(c) || c == ':' || (i > 0 && IsDigit(c));
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric name \"", name, "\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelName(absl::string_view name) {
  bool valid = !name.empty();
  for (size_t i = 0; valid && i < name.size(); ++i) {
    char c = name[i];
    valid = IsLetterOrUnderscore(c) || (i > 0 && IsDigit(c));
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("label name \"", name, "\" is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]*"));
  }
  if (absl::StartsWith(name, "__")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "label name \"", name, "\" is reserved: names starting with \"__\" belong to Prometheus"));
  }
  return absl::OkStatus();
}

}  // namespace sae::metrics
