#include "core/metrics/family.h"

#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/strings/str_join.h"
#include "core/metrics/text_format.h"

namespace sae::metrics {
namespace {

template <typename T>
constexpr MetricType TypeOf() {
  if constexpr (std::is_same_v<T, Counter>) {
    return MetricType::kCounter;
  } else if constexpr (std::is_same_v<T, Gauge>) {
    return MetricType::kGauge;
  } else {
    static_assert(std::is_same_v<T, Histogram>, "a family holds counters, gauges or histograms");
    return MetricType::kHistogram;
  }
}

}  // namespace

FamilyBase::FamilyBase(MetricType type, std::string name, std::string help,
                       std::vector<std::string> label_names, std::vector<double> bucket_bounds)
    : type_(type),
      name_(std::move(name)),
      help_(std::move(help)),
      exposed_help_(EscapeHelp(help_)),
      label_names_(std::move(label_names)),
      bucket_bounds_(std::move(bucket_bounds)) {}

FamilyBase::~FamilyBase() = default;

void FamilyBase::CheckLabelCount(const std::vector<std::string>& label_values) const {
  if (label_values.size() == label_names_.size()) return;
  std::fprintf(stderr,
               "sae::metrics: metric %s has %zu label names (%s) but was given %zu label values "
               "(%s)\n",
               name_.c_str(), label_names_.size(), absl::StrJoin(label_names_, ", ").c_str(),
               label_values.size(), absl::StrJoin(label_values, ", ").c_str());
  std::abort();
}

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bucket_bounds)
    : FamilyBase(TypeOf<T>(), std::move(name), std::move(help), std::move(label_names),
                 std::move(bucket_bounds)) {}

template <typename T>
std::unique_ptr<T> Family<T>::NewChild() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(bucket_bounds());
  } else {
    return std::make_unique<T>();
  }
}

template <typename T>
T& Family<T>::Labels(const std::vector<std::string>& label_values) {
  CheckLabelCount(label_values);
  std::lock_guard<std::mutex> lock(mutex_);
  Child& child = children_[label_values];
  if (child.metric == nullptr) {
    child.metric = NewChild();
    for (size_t i = 0; i < label_values.size(); ++i) {
      if (label_values[i].empty()) continue;
      child.labels.push_back({label_names()[i], ReplaceInvalidUtf8(label_values[i])});
    }
  }
  return *child.metric;
}

template <typename T>
bool Family<T>::Remove(const std::vector<std::string>& label_values) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = children_.find(label_values);
  if (it == children_.end()) return false;
  removed_.push_back(std::move(it->second.metric));
  children_.erase(it);
  return true;
}

template <typename T>
size_t Family<T>::RemoveMatching(absl::string_view label_name, absl::string_view label_value) {
  size_t index = 0;
  while (index < label_names().size() && label_names()[index] != label_name) ++index;
  if (index == label_names().size()) return 0;
  std::lock_guard<std::mutex> lock(mutex_);
  size_t removed = 0;
  for (auto it = children_.begin(); it != children_.end();) {
    if (it->first[index] == label_value) {
      removed_.push_back(std::move(it->second.metric));
      it = children_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

template <typename T>
FamilySnapshot Family<T>::Collect() const {
  FamilySnapshot snapshot;
  snapshot.name = name();
  snapshot.help = exposed_help();
  snapshot.type = ToPrometheusType(type());
  std::lock_guard<std::mutex> lock(mutex_);
  snapshot.metric.reserve(children_.size());
  for (const auto& [label_values, child] : children_) {
    prometheus::ClientMetric& metric = snapshot.metric.emplace_back(child.metric->Collect());
    metric.label = child.labels;
  }
  return snapshot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace sae::metrics
