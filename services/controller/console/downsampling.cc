#include "services/controller/console/downsampling.h"

#include <algorithm>
#include <utility>

namespace sae::controller {

DownsampledSeries::DownsampledSeries(size_t capacity) : capacity_(std::max<size_t>(capacity, 3)) {}

void DownsampledSeries::Restore(std::vector<Point> points, int64_t stride) {
  points_ = std::move(points);
  stride_ = std::max<int64_t>(stride, 1);
  next_index_ = 0;
  for (const Point& point : points_) next_index_ = std::max(next_index_, point.index + 1);
}

DownsampledSeries::Change DownsampledSeries::Add(int64_t step) {
  Change change;
  // A rollback: the points at or after `step` belong to training the run threw away.
  while (!points_.empty() && points_.back().step >= step) {
    change.removed_steps.push_back(points_.back().step);
    points_.pop_back();
  }
  // The newest point was kept only for being the newest.
  if (points_.size() > 1 && points_.back().index % stride_ != 0) {
    change.removed_steps.push_back(points_.back().step);
    points_.pop_back();
  }
  change.index = next_index_++;
  points_.push_back({change.index, step});
  while (points_.size() > capacity_) {
    stride_ *= 2;
    std::vector<Point> kept;
    kept.reserve(points_.size() / 2 + 2);
    for (size_t i = 0; i < points_.size(); ++i) {
      const bool first_or_last = i == 0 || i + 1 == points_.size();
      if (first_or_last || points_[i].index % stride_ == 0) {
        kept.push_back(points_[i]);
      } else {
        change.removed_steps.push_back(points_[i].step);
      }
    }
    points_ = std::move(kept);
  }
  return change;
}

}  // namespace sae::controller
