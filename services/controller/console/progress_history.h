// The progress history behind the console's charts: every progress report of a run's trainer
// rank 0, downsampled (downsampling.h) to at most `capacity` points per run (2048 by default)
// and kept in the run store's `history` family, so that a chart covers the whole run after a
// page reload or a controller restart and a week-long run's chart costs the same as an hour's.
//
// Thread safety: thread-safe. Record is called under the controller's lock (it takes only its
// own), Read from the console's request threads.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_PROGRESS_HISTORY_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_PROGRESS_HISTORY_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sae/v1/history.pb.h"
#include "services/controller/console/downsampling.h"
#include "services/controller/run_store.h"

namespace sae::controller {

class ProgressHistory {
 public:
  // Points kept per run at most.
  static constexpr size_t kDefaultCapacity = 2048;

  // `store` must outlive the history.
  explicit ProgressHistory(RunStore* store, size_t capacity = kDefaultCapacity);

  ProgressHistory(const ProgressHistory&) = delete;
  ProgressHistory& operator=(const ProgressHistory&) = delete;

  // Adds a report of the run's trainer rank 0: `metrics` with its step and tokens set (a report
  // at or before the newest point's step replaces the points from that step on: a restart's
  // rollback). A buffered write of the store.
  // `saes`: each SAE's metrics of a run of many (stored with the point; empty for one SAE).
  absl::Status Record(const std::string& run_id, uint64_t generation,
                      const v1::TrainingMetrics& metrics, absl::Time received,
                      const std::vector<v1::SaePoint>& saes = {});

  // The run's points by step (none for a run without reports, or an unknown run). From memory
  // for the runs read or recorded lately, else from the store (whose deletions leave tombstones
  // that make a read of a long run's range slow until RocksDB compacts them away).
  absl::StatusOr<std::vector<v1::ProgressPoint>> Read(const std::string& run_id);

 private:
  // Runs whose series stay in memory (at most capacity points of ~200 bytes each: 400 KiB for
  // 2048); others are read back from the store when they are recorded or read again.
  static constexpr size_t kCachedRuns = 16;

  struct Cached {
    DownsampledSeries series;
    std::map<int64_t, v1::ProgressPoint> points;  // by step: what the store holds
    uint64_t last_use = 0;
  };

  // The run's cached series, loaded from the store when it is not cached. mutex_ held.
  absl::StatusOr<Cached*> CachedRun(const std::string& run_id);

  RunStore* const store_;
  const size_t capacity_;
  std::mutex mutex_;  // Guards cache_ and uses_; serialises Records.
  std::map<std::string, Cached> cache_;
  uint64_t uses_ = 0;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_PROGRESS_HISTORY_H_
