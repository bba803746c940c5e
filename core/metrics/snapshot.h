// Point-in-time copies of metric families, the input of the text exposition.
#ifndef SAE_CORE_METRICS_SNAPSHOT_H_
#define SAE_CORE_METRICS_SNAPSHOT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/metrics/histogram.h"

namespace sae::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge" or "histogram", as the # TYPE line spells it.
absl::string_view MetricTypeName(MetricType type);

// One child of a family: its label values (in the family's label-name order) and its value.
struct ChildSnapshot {
  std::vector<std::string> label_values;
  double value = 0.0;        // Counters and gauges.
  HistogramValue histogram;  // Histograms.
};

// A family and all its children, children in lexicographic order of their label values.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<std::string> label_names;
  std::vector<double> bucket_bounds;  // Histograms: finite upper bounds; +Inf is implicit.
  std::vector<ChildSnapshot> children;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_SNAPSHOT_H_
