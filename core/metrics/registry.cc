#include "core/metrics/registry.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/metrics/names.h"
#include "core/util/status.h"

namespace sae::metrics {
namespace {

absl::Status ValidateNameForType(MetricType type, const std::string& name) {
  SAE_RETURN_IF_ERROR(ValidateMetricName(name));
  absl::string_view type_name = MetricTypeName(type);
  bool ends_in_total = absl::EndsWith(name, "_total");
  if (type == MetricType::kCounter && !ends_in_total) {
    return absl::InvalidArgumentError(
        absl::StrCat("counter ", name, " must end in \"_total\" (promtool rejects others)"));
  }
  if (type != MetricType::kCounter && ends_in_total) {
    return absl::InvalidArgumentError(absl::StrCat(type_name, " ", name,
                                                   " must not end in \"_total\", which marks "
                                                   "counters; make it a counter or rename it"));
  }
  if (type != MetricType::kHistogram) {
    for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix)) {
        return absl::InvalidArgumentError(
            absl::StrCat(type_name, " ", name, " must not end in \"", suffix,
                         "\", which histograms use for their series"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateLabelNames(const std::string& name,
                                const std::vector<std::string>& label_names) {
  std::set<std::string> seen;
  for (const std::string& label : label_names) {
    absl::Status status = ValidateLabelName(label);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", name, ": ", status.message()));
    }
    if (label == "le" || label == "quantile") {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": label name \"", label, "\" is reserved for ",
                       label == "le" ? "histogram bucket bounds" : "summary quantiles"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric ", name, ": label name \"", label, "\" appears twice"));
    }
  }
  return absl::OkStatus();
}

// Drops a trailing +Inf and checks the rest is strictly increasing with no NaN.
absl::Status NormalizeBucketBounds(const std::string& name, std::vector<double>* bounds) {
  if (!bounds->empty() && bounds->back() == INFINITY) bounds->pop_back();
  for (size_t i = 0; i < bounds->size(); ++i) {
    double bound = (*bounds)[i];
    if (std::isnan(bound) || bound == INFINITY) {
      return absl::InvalidArgumentError(absl::StrCat("histogram ", name, ": bucket bound ", i,
                                                     " is ", bound,
                                                     "; only the last bound may be +Inf"));
    }
    if (i > 0 && !((*bounds)[i - 1] < bound)) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram ", name, ": bucket bounds must be strictly increasing, but ",
                       (*bounds)[i - 1], " is followed by ", bound));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Registry::Registry() = default;
Registry::~Registry() = default;

absl::StatusOr<Family<Counter>*> Registry::AddCounter(const std::string& name,
                                                      const std::string& help,
                                                      const std::vector<std::string>& label_names) {
  SAE_ASSIGN_OR_RETURN(FamilyBase * family, Add(MetricType::kCounter, name, help, label_names, {}));
  return static_cast<Family<Counter>*>(family);
}

absl::StatusOr<Family<Gauge>*> Registry::AddGauge(const std::string& name, const std::string& help,
                                                  const std::vector<std::string>& label_names) {
  SAE_ASSIGN_OR_RETURN(FamilyBase * family, Add(MetricType::kGauge, name, help, label_names, {}));
  return static_cast<Family<Gauge>*>(family);
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogram(
    const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
    std::vector<double> bucket_bounds) {
  SAE_ASSIGN_OR_RETURN(FamilyBase * family, Add(MetricType::kHistogram, name, help, label_names,
                                                std::move(bucket_bounds)));
  return static_cast<Family<Histogram>*>(family);
}

absl::StatusOr<FamilyBase*> Registry::Add(MetricType type, const std::string& name,
                                          const std::string& help,
                                          const std::vector<std::string>& label_names,
                                          std::vector<double> bucket_bounds) {
  SAE_RETURN_IF_ERROR(ValidateNameForType(type, name));
  if (help.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metric ", name, " needs a help text saying what it measures and in what unit"));
  }
  SAE_RETURN_IF_ERROR(ValidateLabelNames(name, label_names));
  if (type == MetricType::kHistogram) {
    SAE_RETURN_IF_ERROR(NormalizeBucketBounds(name, &bucket_bounds));
  }

  std::lock_guard<std::mutex> lock(families_mutex_);
  for (const std::unique_ptr<FamilyBase>& existing : families_) {
    if (existing->name() != name) continue;
    if (existing->type() == type && existing->help() == help &&
        existing->label_names() == label_names && existing->bucket_bounds() == bucket_bounds) {
      return existing.get();
    }
    return absl::AlreadyExistsError(absl::StrCat(
        "metric ", name, " is already registered as a ", MetricTypeName(existing->type()),
        " with labels (", absl::StrJoin(existing->label_names(), ", "), ") and help \"",
        existing->help(), "\"; a second registration must match it exactly"));
  }
  std::unique_ptr<FamilyBase> family;
  switch (type) {
    case MetricType::kCounter:
      family.reset(new Family<Counter>(name, help, label_names, {}));
      break;
    case MetricType::kGauge:
      family.reset(new Family<Gauge>(name, help, label_names, {}));
      break;
    case MetricType::kHistogram:
      family.reset(new Family<Histogram>(name, help, label_names, std::move(bucket_bounds)));
      break;
  }
  if (label_names.empty()) {
    switch (type) {
      case MetricType::kCounter:
        static_cast<Family<Counter>*>(family.get())->Labels();
        break;
      case MetricType::kGauge:
        static_cast<Family<Gauge>*>(family.get())->Labels();
        break;
      case MetricType::kHistogram:
        static_cast<Family<Histogram>*>(family.get())->Labels();
        break;
    }
  }
  families_.push_back(std::move(family));
  return families_.back().get();
}

void Registry::AddCollector(std::function<void()> collector) {
  std::lock_guard<std::mutex> lock(collect_mutex_);
  collectors_.push_back(std::move(collector));
}

std::vector<FamilySnapshot> Registry::Collect() {
  std::lock_guard<std::mutex> collect_lock(collect_mutex_);
  for (const std::function<void()>& collector : collectors_) collector();
  std::vector<const FamilyBase*> families;
  {
    std::lock_guard<std::mutex> lock(families_mutex_);
    for (const std::unique_ptr<FamilyBase>& family : families_) families.push_back(family.get());
  }
  // Families are never removed, so the pointers outlive the lock.
  std::sort(families.begin(), families.end(),
            [](const FamilyBase* a, const FamilyBase* b) { return a->name() < b->name(); });
  std::vector<FamilySnapshot> snapshots;
  snapshots.reserve(families.size());
  for (const FamilyBase* family : families) snapshots.push_back(family->Collect());
  return snapshots;
}

LabelledSeries::LabelledSeries(Registry& registry, std::vector<std::string> label_names,
                               std::vector<std::string> label_values)
    : registry_(registry),
      label_names_(std::move(label_names)),
      label_values_(std::move(label_values)) {}

absl::Status LabelledSeries::AddCounter(const std::string& name, const std::string& help,
                                        Counter** out) {
  absl::StatusOr<Family<Counter>*> family = registry_.AddCounter(name, help, label_names_);
  if (!family.ok()) return family.status();
  *out = &(*family)->Labels(label_values_);
  return absl::OkStatus();
}

absl::Status LabelledSeries::AddGauge(const std::string& name, const std::string& help,
                                      Gauge** out) {
  absl::StatusOr<Family<Gauge>*> family = registry_.AddGauge(name, help, label_names_);
  if (!family.ok()) return family.status();
  *out = &(*family)->Labels(label_values_);
  return absl::OkStatus();
}

absl::Status LabelledSeries::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<double> bucket_bounds, Histogram** out) {
  absl::StatusOr<Family<Histogram>*> family =
      registry_.AddHistogram(name, help, label_names_, std::move(bucket_bounds));
  if (!family.ok()) return family.status();
  *out = &(*family)->Labels(label_values_);
  return absl::OkStatus();
}

}  // namespace sae::metrics
