#include "services/controller/console/progress_history.h"

#include <algorithm>
#include <utility>

#include "core/util/status.h"

namespace sae::controller {

ProgressHistory::ProgressHistory(RunStore* store, size_t capacity)
    : store_(store), capacity_(capacity) {}

absl::StatusOr<ProgressHistory::Cached*> ProgressHistory::CachedRun(const std::string& run_id) {
  auto it = cache_.find(run_id);
  if (it == cache_.end()) {
    SAE_ASSIGN_OR_RETURN(std::vector<v1::ProgressPoint> stored, store_->ReadHistory(run_id));
    std::vector<DownsampledSeries::Point> points;
    points.reserve(stored.size());
    for (const v1::ProgressPoint& point : stored) {
      points.push_back({point.index(), point.metrics().step()});
    }
    if (cache_.size() >= kCachedRuns) {
      auto oldest =
          std::min_element(cache_.begin(), cache_.end(), [](const auto& a, const auto& b) {
            return a.second.last_use < b.second.last_use;
          });
      cache_.erase(oldest);
    }
    it = cache_.emplace(run_id, Cached{DownsampledSeries(capacity_), {}, 0}).first;
    it->second.series.Restore(std::move(points), stored.empty() ? 1 : stored.back().stride());
    for (v1::ProgressPoint& point : stored) {
      const int64_t step = point.metrics().step();
      it->second.points.emplace(step, std::move(point));
    }
  }
  it->second.last_use = ++uses_;
  return &it->second;
}

absl::Status ProgressHistory::Record(const std::string& run_id, uint64_t generation,
                                     const v1::TrainingMetrics& metrics, absl::Time received,
                                     const std::vector<v1::SaePoint>& saes) {
  std::lock_guard<std::mutex> lock(mutex_);
  SAE_ASSIGN_OR_RETURN(Cached * cached, CachedRun(run_id));
  DownsampledSeries::Change change = cached->series.Add(metrics.step());
  v1::ProgressPoint point;
  point.set_index(change.index);
  point.set_time_unix_ms(absl::ToUnixMillis(received));
  point.set_generation(generation);
  *point.mutable_metrics() = metrics;
  for (const v1::SaePoint& sae : saes) *point.add_saes() = sae;
  point.set_stride(cached->series.stride());
  absl::Status written = store_->WriteHistory(run_id, change.removed_steps, point);
  if (!written.ok()) {
    // The store and the cached series would disagree: read the series back next time.
    cache_.erase(run_id);
    return written;
  }
  for (int64_t step : change.removed_steps) cached->points.erase(step);
  cached->points[metrics.step()] = std::move(point);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::ProgressPoint>> ProgressHistory::Read(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  SAE_ASSIGN_OR_RETURN(Cached * cached, CachedRun(run_id));
  std::vector<v1::ProgressPoint> points;
  points.reserve(cached->points.size());
  for (const auto& [step, point] : cached->points) points.push_back(point);
  return points;
}

}  // namespace sae::controller
