// Load: one controller (in-process, over gRPC on loopback) with 500 runs submitted, 50 clients
// following runs (WatchRun, as `saectl get -w` / `logs -f`), and 20 fake workers
// (tests/support/fake_worker.h) of which one vanishes and is replaced every half second, so
// leases lapse and runs restart while others are placed. A probe measures GetRun and ListRuns
// meanwhile. Bounded in time (the ctest label "load"); it prints its figures rather than
// asserting any duration (docs/reliability.md keeps them).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/common/controller_client.h"
#include "services/common/run_state.h"
#include "services/controller/controller_server.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using Clock = std::chrono::steady_clock;
using support::FakeWorker;
using support::FakeWorkerOptions;

constexpr int kRuns = 500;
constexpr int kWatchers = 50;
constexpr int kWorkersPerRole = 10;
// The test ends when every run is final or after this long, whichever comes first.
constexpr auto kLongest = std::chrono::seconds(90);

// This process's resident memory (VmRSS), in MiB.
double ResidentMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    int64_t kib = 0;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits.push_back(c);
    }
    if (absl::SimpleAtoi(digits, &kib)) return static_cast<double>(kib) / 1024.0;
  }
  return -1;
}

// Latencies of one call, in milliseconds.
struct Latencies {
  std::vector<double> ms;
  int64_t failures = 0;

  double Percentile(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    const size_t index = std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()));
    return ms[index];
  }
  std::string Summary(const char* name) {
    return absl::StrCat(name, ": ", ms.size(), " calls, ", failures, " failed, p50 ",
                        Percentile(0.50), " ms, p99 ", Percentile(0.99), " ms, max ",
                        Percentile(1.0), " ms");
  }
};

std::unique_ptr<client::ControllerClient> Connect(const std::string& address) {
  client::ControllerClientOptions options;
  options.address = address;
  options.timeout = absl::Seconds(30);
  auto client = client::ControllerClient::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// What the probe saw in its last ListRuns.
struct RunCounts {
  int64_t final_runs = 0;
  int64_t succeeded = 0;
  int64_t restarts = 0;
};

class ControllerLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControllerServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = folder_.path() + "/db";
    options.controller.lease = absl::Seconds(2);
    options.controller.checkpoint_retention = 1;
    options.tick = absl::Milliseconds(20);
    auto started = ControllerServer::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::move(*started);
    address_ = server_->address();
    client_ = Connect(address_);
    ASSERT_NE(client_, nullptr);
  }

  void TearDown() override {
    Stop();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  // 500 runs of 4 steps on one activation server and one trainer each, allowed many restarts.
  void SubmitRuns() {
    for (int i = 0; i < kRuns; ++i) {
      v1::SubmitRunRequest request;
      request.set_config_yaml(support::TestRunYaml(1, 1, /*steps=*/4, /*max_restarts=*/50));
      request.set_name(absl::StrCat("load-", i));
      const auto start = Clock::now();
      absl::StatusOr<v1::Run> run = client_->SubmitRun(request);
      submits_.ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      ASSERT_TRUE(run.ok()) << run.status();
      run_ids_.push_back(run->run_id());
    }
  }

  // 50 followers, each on its own connection, of runs spread over the queue.
  void StartWatchers() {
    const absl::Time deadline = absl::Now() + absl::FromChrono(kLongest) + absl::Seconds(30);
    for (int w = 0; w < kWatchers; ++w) {
      watcher_clients_.push_back(Connect(address_));
      ASSERT_NE(watcher_clients_.back(), nullptr);
    }
    for (int w = 0; w < kWatchers; ++w) {
      watchers_.emplace_back([this, w, deadline] {
        client::ControllerClient* own = watcher_clients_[static_cast<size_t>(w)].get();
        const std::string& run_id = run_ids_[static_cast<size_t>(w * (kRuns / kWatchers))];
        absl::Status watched = own->WatchRun(
            run_id, 0, /*follow=*/true,
            [this, w](const v1::RunEvent&) {
              events_[static_cast<size_t>(w)].fetch_add(1);
              return !stop_.load();
            },
            deadline);
        // A watch ends when its run is final, or is cancelled when the test ends first.
        EXPECT_TRUE(watched.ok() || (stop_.load() && absl::IsCancelled(watched)))
            << run_id << ": " << watched;
      });
    }
  }

  // 20 workers; every half second one vanishes (its lease lapses 2 s later, and its run
  // restarts) and a fresh one of the same role registers.
  void StartWorkers() {
    for (int i = 0; i < kWorkersPerRole; ++i) {
      workers_.push_back(StartWorker(v1::WORKER_ROLE_ACTIVATION_SERVER));
      workers_.push_back(StartWorker(v1::WORKER_ROLE_TRAINER));
    }
    for (const auto& worker : workers_) ASSERT_NE(worker, nullptr);
    churn_ = std::thread([this] {
      std::mt19937 random(17);
      while (!stop_.load()) {
        const size_t victim = random() % workers_.size();
        const v1::WorkerRole role =
            victim % 2 == 0 ? v1::WORKER_ROLE_ACTIVATION_SERVER : v1::WORKER_ROLE_TRAINER;
        workers_[victim].reset();  // vanishes without a word, like SIGKILL
        workers_[victim] = StartWorker(role);
        ++replaced_;
        for (int i = 0; i < 10 && !stop_.load(); ++i) absl::SleepFor(absl::Milliseconds(50));
      }
    });
  }

  std::unique_ptr<FakeWorker> StartWorker(v1::WorkerRole role) {
    FakeWorkerOptions worker;
    worker.controller = address_;
    worker.role = role;
    worker.step_time = absl::Milliseconds(10);
    worker.checkpoint_every = 2;
    return FakeWorker::Start(worker);
  }

  // GetRun of a random run and ListRuns, alternately, until every run is final (or kLongest).
  RunCounts Probe() {
    std::mt19937 random(5);
    RunCounts counts;
    const auto give_up = Clock::now() + kLongest;
    while (Clock::now() < give_up && counts.final_runs < kRuns) {
      auto start = Clock::now();
      absl::StatusOr<v1::Run> run = client_->GetRun(run_ids_[random() % run_ids_.size()]);
      get_run_.ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      if (!run.ok()) ++get_run_.failures;
      start = Clock::now();
      absl::StatusOr<std::vector<v1::Run>> runs = client_->ListRuns();
      list_runs_.ms.push_back(
          std::chrono::duration<double, std::milli>(Clock::now() - start).count());
      if (!runs.ok()) {
        ++list_runs_.failures;
        continue;
      }
      EXPECT_EQ(runs->size(), static_cast<size_t>(kRuns));
      counts = RunCounts{};
      for (const v1::Run& each : *runs) {
        counts.restarts += static_cast<int64_t>(each.generation());
        if (client::IsFinalState(each.state())) ++counts.final_runs;
        if (each.state() == v1::RUN_STATE_SUCCEEDED) ++counts.succeeded;
      }
      rss_peak_ = std::max(rss_peak_, ResidentMiB());
    }
    return counts;
  }

  // Ends the churn and the watches; the workers vanish.
  void Stop() {
    stop_ = true;
    if (churn_.joinable()) churn_.join();
    for (auto& watcher_client : watcher_clients_) watcher_client->Cancel();
    for (std::thread& watcher : watchers_) watcher.join();
    watchers_.clear();
    workers_.clear();
  }

  support::TempDir folder_;
  std::unique_ptr<ControllerServer> server_;
  std::string address_;
  std::unique_ptr<client::ControllerClient> client_;
  std::vector<std::string> run_ids_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<client::ControllerClient>> watcher_clients_;
  std::vector<std::thread> watchers_;
  std::vector<std::atomic<int64_t>> events_ = std::vector<std::atomic<int64_t>>(kWatchers);
  std::vector<std::unique_ptr<FakeWorker>> workers_;
  std::thread churn_;
  int64_t replaced_ = 0;
  Latencies submits_, get_run_, list_runs_;
  double rss_peak_ = 0;
};

TEST_F(ControllerLoadTest, StaysResponsiveWithManyRunsWatchersAndWorkersThatComeAndGo) {
  const double rss_start = ResidentMiB();
  rss_peak_ = rss_start;
  SubmitRuns();
  ASSERT_FALSE(HasFatalFailure());
  StartWatchers();
  ASSERT_FALSE(HasFatalFailure());
  StartWorkers();
  ASSERT_FALSE(HasFatalFailure());
  const RunCounts counts = Probe();
  Stop();

  int64_t events = 0;
  int64_t idle_watchers = 0;
  for (const auto& count : events_) {
    events += count.load();
    if (count.load() == 0) ++idle_watchers;
  }
  std::printf(
      "load: %d runs, %lld final (%lld succeeded, %lld restarts), %d watchers (%lld events), "
      "%d workers, %lld replaced\n",
      kRuns, static_cast<long long>(counts.final_runs), static_cast<long long>(counts.succeeded),
      static_cast<long long>(counts.restarts), kWatchers, static_cast<long long>(events),
      2 * kWorkersPerRole, static_cast<long long>(replaced_));
  std::printf("load: %s\nload: %s\nload: %s\n", submits_.Summary("SubmitRun").c_str(),
              get_run_.Summary("GetRun").c_str(), list_runs_.Summary("ListRuns").c_str());
  std::printf("load: resident memory of the test process %.0f MiB at start, %.0f MiB at most\n",
              rss_start, rss_peak_);
  RecordProperty("get_run_p99_ms", std::to_string(get_run_.Percentile(0.99)));
  RecordProperty("list_runs_p99_ms", std::to_string(list_runs_.Percentile(0.99)));

  EXPECT_EQ(get_run_.failures, 0);
  EXPECT_EQ(list_runs_.failures, 0);
  EXPECT_EQ(idle_watchers, 0) << "a watcher saw no event, not even its run's submission";
  EXPECT_GT(counts.succeeded, 0) << "no run finished while workers came and went";
}

}  // namespace
}  // namespace sae::controller
