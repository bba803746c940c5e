// Prometheus's rules for metric and label names.
#ifndef SAE_CORE_METRICS_NAMES_H_
#define SAE_CORE_METRICS_NAMES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sae::metrics {

// OK when `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*; InvalidArgument naming it otherwise.
absl::Status ValidateMetricName(absl::string_view name);

// OK when `name` matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__" (reserved for
// Prometheus's own labels); InvalidArgument naming it otherwise.
absl::Status ValidateLabelName(absl::string_view name);

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_NAMES_H_
