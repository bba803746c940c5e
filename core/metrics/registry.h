// The set of metric families a process exports on /metrics.
//
//   Registry registry;
//   SAE_ASSIGN_OR_RETURN(Family<Gauge>* l0, registry.AddGauge(
//       "sae_train_l0", "Mean number of active features per token.", {"run_id", "rank"}));
//   Gauge& run_l0 = l0->Labels({"run-1", "0"});  // once
//   run_l0.Set(3.5);                              // every step: one atomic store
#ifndef SAE_CORE_METRICS_REGISTRY_H_
#define SAE_CORE_METRICS_REGISTRY_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/metrics/family.h"
#include "core/metrics/histogram.h"
#include "core/metrics/snapshot.h"

namespace sae::metrics {

// Owns metric families and the collectors that refresh them. All methods are thread-safe. A
// process usually has one, shared by everything that exports metrics and by its MetricsServer.
class Registry {
 public:
  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Registers a family, or returns the existing one when a family of the same name, type, help,
  // label names (and bucket bounds) exists already, so two components may ask for the same
  // family. The family lives as long as the registry. A family with no label names starts with
  // its one child at zero, so it is exported before the first update.
  //
  // InvalidArgument when the name or a label name breaks Prometheus's rules (see names.h), the
  // help is empty, a label name repeats, or a label is "le" (histogram buckets) or "quantile"
  // (summaries). Names must also follow the conventions promtool checks: a counter's name ends in
  // "_total" and nothing else's does; only histograms end in "_bucket", "_sum" or "_count".
  // (With these rules no two families can write the same series name.) AlreadyExists when the
  // name is taken by a family that differs in type, help, label names or bucket bounds.
  absl::StatusOr<Family<Counter>*> AddCounter(const std::string& name, const std::string& help,
                                              const std::vector<std::string>& label_names);
  absl::StatusOr<Family<Gauge>*> AddGauge(const std::string& name, const std::string& help,
                                          const std::vector<std::string>& label_names);
  // `bucket_bounds` must be strictly increasing and not NaN; a trailing +Inf is dropped, since
  // the +Inf bucket is always there. Otherwise InvalidArgument.
  absl::StatusOr<Family<Histogram>*> AddHistogram(
      const std::string& name, const std::string& help, const std::vector<std::string>& label_names,
      std::vector<double> bucket_bounds = DefaultDurationBuckets());

  // Adds a callback that Collect runs first, to refresh gauges computed on demand (process
  // memory, queue depths). Collectors run one scrape at a time, in the order added; they may
  // update metrics and add families but must not call Collect or AddCollector.
  void AddCollector(std::function<void()> collector);

  // Runs the collectors, then snapshots every family, sorted by name.
  std::vector<FamilySnapshot> Collect();

 private:
  absl::StatusOr<FamilyBase*> Add(MetricType type, const std::string& name, const std::string& help,
                                  const std::vector<std::string>& label_names,
                                  std::vector<double> bucket_bounds);

  std::mutex families_mutex_;  // Guards families_.
  std::vector<std::unique_ptr<FamilyBase>> families_;

  // Guards collectors_, and is held for a whole Collect so that concurrent scrapes do not run
  // collectors at the same time. Taken before families_mutex_, never after.
  std::mutex collect_mutex_;
  std::vector<std::function<void()>> collectors_;
};

// One label set's series across several families: a component's series for one run, rank or
// server. Each call registers (or finds) a family with `label_names` and points `*out` at its
// child for `label_values`; errors as Registry's. The registry must outlive the series.
class LabelledSeries {
 public:
  LabelledSeries(Registry& registry, std::vector<std::string> label_names,
                 std::vector<std::string> label_values);

  absl::Status AddCounter(const std::string& name, const std::string& help, Counter** out);
  absl::Status AddGauge(const std::string& name, const std::string& help, Gauge** out);
  absl::Status AddHistogram(const std::string& name, const std::string& help,
                            std::vector<double> bucket_bounds, Histogram** out);

 private:
  Registry& registry_;
  const std::vector<std::string> label_names_;
  const std::vector<std::string> label_values_;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_REGISTRY_H_
