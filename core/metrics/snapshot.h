// Metric types and point-in-time copies of metric families, the input of the text exposition.
#ifndef SAE_CORE_METRICS_SNAPSHOT_H_
#define SAE_CORE_METRICS_SNAPSHOT_H_

#include "absl/strings/string_view.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace sae::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge" or "histogram", as the # TYPE line spells it.
absl::string_view MetricTypeName(MetricType type);

// prometheus-cpp's name for the same type.
prometheus::MetricType ToPrometheusType(MetricType type);

// A family and the current values of its children, as prometheus-cpp's TextSerializer takes it:
// name, help (already escaped for the # HELP line), type, and one prometheus::ClientMetric per
// child in lexicographic order of its label values, carrying its non-empty labels.
using FamilySnapshot = prometheus::MetricFamily;

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_SNAPSHOT_H_
