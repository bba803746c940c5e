// A metric family: one name, help text, type and list of label names, with one child per tuple
// of label values (for example sae_train_l0{run_id="run-1",rank="0"}).
#ifndef SAE_CORE_METRICS_FAMILY_H_
#define SAE_CORE_METRICS_FAMILY_H_

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/metrics/counter.h"
#include "core/metrics/gauge.h"
#include "core/metrics/histogram.h"
#include "core/metrics/snapshot.h"
#include "prometheus/client_metric.h"

namespace sae::metrics {

class Registry;

// What every family has, whatever the type of its children. Families are created and owned by a
// Registry and live as long as it does.
class FamilyBase {
 public:
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;
  virtual ~FamilyBase();

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  // The help as exported: escaped for the # HELP line, invalid UTF-8 replaced (text_format.h).
  const std::string& exposed_help() const { return exposed_help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Finite upper bounds of a histogram's buckets; empty for counters and gauges.
  const std::vector<double>& bucket_bounds() const { return bucket_bounds_; }

  // The family and the current values of its children, for prometheus::TextSerializer.
  // Thread-safe.
  virtual FamilySnapshot Collect() const = 0;

 protected:
  FamilyBase(MetricType type, std::string name, std::string help,
             std::vector<std::string> label_names, std::vector<double> bucket_bounds);

  // Aborts the process with a message naming the family unless `label_values` has one value per
  // label name: a wrong count is a programming error, like a call with the wrong arguments.
  void CheckLabelCount(const std::vector<std::string>& label_values) const;

 private:
  const MetricType type_;
  const std::string name_;
  const std::string help_;
  const std::string exposed_help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bucket_bounds_;
};

// A family whose children are T: Counter, Gauge or Histogram. Obtained from Registry::AddCounter,
// AddGauge or AddHistogram. All methods are thread-safe.
//
// Not a prometheus::Family: that one deletes a child on Remove, so a reference to it would dangle,
// while ours promise to stay valid. The children's values are prometheus-cpp metrics all the same.
template <typename T>
class Family final : public FamilyBase {
 public:
  // The child for `label_values` (one per label name, in the same order), created at zero on
  // first use. The reference stays valid for the registry's life, even after Remove, so callers
  // should keep it and call Increment/Set/Observe on it in hot loops: this lookup takes a lock and
  // compares strings. Label values may be any string; the exposition escapes them.
  // Aborts when the number of values differs from the number of label names.
  T& Labels(const std::vector<std::string>& label_values = {});

  // Stops exporting the child for `label_values` (for example when a run ends) and returns
  // whether it existed. References to it stay valid, but what is written through them is no
  // longer exported; a later Labels() with the same values starts a fresh child at zero.
  bool Remove(const std::vector<std::string>& label_values);

  // Removes every child whose label `label_name` equals `label_value` (for example every rank of
  // one run_id), with Remove's semantics, and returns how many there were. 0 when the family has
  // no such label.
  size_t RemoveMatching(absl::string_view label_name, absl::string_view label_value);

  FamilySnapshot Collect() const override;

 private:
  friend class Registry;

  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bucket_bounds);

  // A live child and its labels as exported: empty values left out (Prometheus reads an empty
  // label as an absent one), invalid UTF-8 replaced. Built once, when the child is created.
  struct Child {
    std::unique_ptr<T> metric;
    std::vector<prometheus::ClientMetric::Label> labels;
  };

  std::unique_ptr<T> NewChild() const;

  // Guards children_ and removed_, not the children's values (prometheus-cpp's atomics).
  mutable std::mutex mutex_;
  // Sorted by label values, which makes the exposition deterministic.
  std::map<std::vector<std::string>, Child> children_;
  // Removed children, kept alive so that references handed out never dangle.
  std::vector<std::unique_ptr<T>> removed_;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_FAMILY_H_
