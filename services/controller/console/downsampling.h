// The downsampling rule of a run's progress history: which reports to keep so that a series of
// any length stays within a fixed number of points and still spans the whole run.
//
// Every report gets the next index (0, 1, 2, ...). The series keeps the reports whose index is a
// multiple of the stride (1 at first), plus always the first and the newest report. When a new
// report would exceed the capacity, the stride doubles and the points off the new grid are
// dropped (the first and the newest stay): the resolution halves, the span stays the whole run.
// A report at a step at or before the newest point's (a restarted run resuming from an earlier
// checkpoint) first drops the points at or after its step: the series follows the training that
// the run's SAE came from.
//
// Invariants after every Add: at most `capacity` points, strictly increasing steps, the newest
// report is the last point, and the first point is the first report since the last rollback to
// before it. Not thread-safe.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_DOWNSAMPLING_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_DOWNSAMPLING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sae::controller {

class DownsampledSeries {
 public:
  struct Point {
    int64_t index = 0;
    int64_t step = 0;
  };
  // What an Add changed: the steps of the points it removed (to delete from storage), and the
  // index given to the new point (which is always kept).
  struct Change {
    std::vector<int64_t> removed_steps;
    int64_t index = 0;
  };

  // capacity >= 3 (first, one on the grid, newest); smaller values are raised to 3.
  explicit DownsampledSeries(size_t capacity);

  // Restores a stored series: `points` by increasing step, and the stride it had. The next
  // report gets the index after the largest stored one.
  void Restore(std::vector<Point> points, int64_t stride);

  // Adds the next report, at `step`.
  Change Add(int64_t step);

  const std::vector<Point>& points() const { return points_; }
  int64_t stride() const { return stride_; }
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_;
  std::vector<Point> points_;
  int64_t stride_ = 1;
  int64_t next_index_ = 0;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_DOWNSAMPLING_H_
