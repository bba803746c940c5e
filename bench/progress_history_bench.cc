// The console's progress history (services/controller/console/progress_history.h): the cost of
// recording one progress report of trainer rank 0 (a downsampled series of at most 2048 points
// in RocksDB, halving included) beside the write the controller already makes for a report, a
// buffered WriteRun of the run record, measured in the same run on the same store. Also the
// cost of reading a full history, what the console's /api/runs/ID/history reads.
//
//   build/bench/progress_history_bench [reports]
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "services/controller/console/progress_history.h"
#include "services/controller/run_store.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

sae::v1::TrainingMetrics Report(int64_t step) {
  sae::v1::TrainingMetrics m;
  m.set_step(step);
  m.set_tokens(step * 4096);
  m.set_learning_rate(4e-4);
  m.set_l1_coefficient(8e-5);
  m.set_overall_loss(0.01 + 1.0 / static_cast<double>(step));
  m.set_mse_loss(0.008);
  m.set_l1_loss(40.0);
  m.set_l0(35.0);
  m.set_explained_variance(0.91);
  m.set_dead_features(12);
  m.set_tokens_per_second(52000);
  if (step % 50 == 0) m.set_mean_log10_feature_sparsity(-3.2);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t reports = argc > 1 ? std::atoll(argv[1]) : 50000;
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("progress_history_bench_", getpid()))
          .string();
  auto store = sae::controller::RunStore::Open(dir);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  // Reference: the run record the controller writes (buffered) for a report.
  sae::v1::Run run;
  run.set_run_id("bench-run");
  run.set_config_yaml(std::string(1500, 'c'));
  for (int i = 0; i < 4; ++i) {
    sae::v1::RunWorker* worker = run.add_workers();
    worker->set_worker_id(absl::StrCat("trainer-", i));
    worker->set_address("10.0.0.1:29500");
  }
  Clock::time_point start = Clock::now();
  for (int64_t step = 1; step <= reports; ++step) {
    *run.mutable_metrics() = Report(step);
    run.set_step(step);
    if (!(*store)->WriteRun(run, {}, sae::controller::Durability::kBuffered).ok()) return 1;
  }
  const double reference = SecondsSince(start) / static_cast<double>(reports);

  sae::controller::ProgressHistory history(store->get());
  start = Clock::now();
  for (int64_t step = 1; step <= reports; ++step) {
    if (!history.Record("bench-run", 0, Report(step), absl::Now()).ok()) return 1;
  }
  const double record = SecondsSince(start) / static_cast<double>(reports);

  start = Clock::now();
  constexpr int kReads = 20;
  size_t points = 0;
  for (int i = 0; i < kReads; ++i) {
    auto read = history.Read("bench-run");
    if (!read.ok()) return 1;
    points = read->size();
  }
  const double read = SecondsSince(start) / kReads;
  // A controller's first read of the run after a restart goes to the store, across the
  // deletions' tombstones.
  start = Clock::now();
  auto cold = sae::controller::ProgressHistory(store->get()).Read("bench-run");
  if (!cold.ok()) return 1;
  const double cold_read = SecondsSince(start);

  std::printf("progress history: %lld reports recorded, %zu points kept (at most %zu)\n",
              static_cast<long long>(reports), points,
              sae::controller::ProgressHistory::kDefaultCapacity);
  std::printf("  Record one report:        %8.2f us\n", record * 1e6);
  std::printf("  WriteRun (reference):     %8.2f us   ratio %.2f\n", reference * 1e6,
              record / reference);
  std::printf("  Read the whole history:   %8.2f ms (%zu points, from memory)\n", read * 1e3,
              points);
  std::printf("  Read it from the store:   %8.2f ms (the first read after a restart)\n",
              cold_read * 1e3);
  store->reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return 0;
}
