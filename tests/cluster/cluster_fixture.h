// The fixture of the cluster tests (cluster_test.cc, cluster_many_saes_test.cc): a local cluster
// started with `saectl cluster up`, the shared model and token files, and saectl helpers.
#ifndef SAE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
#define SAE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/io/saelens.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/command.h"
#include "support/local_cluster.h"
#include "support/temp_dir.h"

namespace sae::cluster_testing {

namespace fs = std::filesystem;
using support::TempDir;

using Result = support::CommandResult;

// The model and tokens every test trains on, made once.
class SharedFiles {
 public:
  static const SharedFiles& Get() {
    static SharedFiles* files = new SharedFiles();
    return *files;
  }
  std::string dir() const { return folder_.path(); }

 private:
  SharedFiles() {
    support::CommandRunner runner(folder_.path());
    absl::Status files = support::WriteGpt2TinyRunFiles(runner, folder_.path(), 4000, 2);
    EXPECT_TRUE(files.ok()) << files;
  }
  TempDir folder_;
};

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("SAECTL_SERVER", "127.0.0.1:1", 1);
    ::unsetenv("SAE_AUTH_TOKEN");
  }

  void TearDown() override {
    if (!cluster_up_) return;
    std::vector<std::string> survivors;
    Result down = cluster_.Down(/*down_timeout_seconds=*/10, /*timeout_seconds=*/60, &survivors);
    EXPECT_EQ(down.code, 0) << down.err;
    for (const std::string& process : survivors) {
      ADD_FAILURE() << "still running after cluster down: " << process;
    }
    if (HasFailure()) cluster_.DumpLogs(6000);
  }

  // Runs saectl with `args` (split by the shell), killed after `timeout_seconds`.
  Result Saectl(const std::string& args, int timeout_seconds = 60) {
    return runner_.Saectl(args, timeout_seconds);
  }

  std::string DataDir() const { return cluster_.data_dir(); }

  // `saectl cluster up` with the real binaries; points SAECTL_SERVER at its controller.
  void StartCluster(int servers, int trainers, double lease_seconds = 2) {
    support::LocalClusterOptions options;
    options.activation_servers = servers;
    options.trainers = trainers;
    options.lease_seconds = lease_seconds;
    Result up = cluster_.Up(options);
    cluster_up_ = true;
    ASSERT_EQ(up.code, 0) << up.out << up.err;
    ASSERT_FALSE(support::LocalCluster::ServerAddress(up).empty()) << up.out;
  }

  // SIGKILL to the cluster's process `name` ("trainer-1", "controller", ...); returns once it
  // is gone.
  void KillProcess(const std::string& name) { cluster_.KillProcess(name); }
  void FreezeProcess(const std::string& name) { cluster_.FreezeProcess(name); }
  void ThawProcess(const std::string& name) { cluster_.ThawProcess(name); }
  std::string ProcessLog(const std::string& name) const { return cluster_.ProcessLog(name); }

  // The /metrics text of the cluster's process `name`; "" (and a failure) when it does not
  // answer.
  std::string Scrape(const std::string& name) {
    const int port = cluster_.Process(name).value("metrics_port", -1);
    httplib::Client client("127.0.0.1", port);
    client.set_connection_timeout(5);
    client.set_read_timeout(10);
    httplib::Result response = client.Get("/metrics");
    if (!response || response->status != 200) {
      ADD_FAILURE() << "no /metrics from " << name << " on port " << port;
      return "";
    }
    return response->body;
  }

  // The name in cluster.json of the process that is the run's worker of `role` and `rank`
  // ("trainer-1", ...).
  std::string ProcessOf(const std::string& run_id, const std::string& role, int rank) {
    std::string address;
    for (const auto& worker : GetRun(run_id).value("workers", nlohmann::json::array())) {
      if (worker.value("role", "") == role && worker.value("rank", 0) == rank) {
        address = worker.value("address", "");
      }
    }
    auto record = nlohmann::json::parse(*ReadFile(DataDir() + "/cluster.json"));
    for (const auto& process : record["processes"]) {
      if (!address.empty() && process.value("address", "") == address) return process["name"];
    }
    ADD_FAILURE() << "no process is " << role << " " << rank << " of run " << run_id;
    return "";
  }

  // The cluster's supervisor restarted process `name` after its kill -9, and `cluster status`
  // shows the restart and how it exited.
  void ExpectRestartedBySupervisor(const std::string& name) {
    nlohmann::json process = cluster_.WaitForRestart(name, 1, 60);
    EXPECT_EQ(process.value("last_exit", ""), "killed by SIGKILL") << process.dump();
    Result status = Saectl("cluster status --data-dir " + DataDir());
    const size_t row = status.out.find(name + " ");
    ASSERT_NE(row, std::string::npos) << status.out;
    const std::string line = status.out.substr(row, status.out.find('\n', row) - row);
    EXPECT_TRUE(absl::StrContains(line, "killed by SIGKILL")) << status.out;
    EXPECT_TRUE(absl::StrContains(status.out, "supervisor: pid")) << status.out;
  }

  // The run.yaml of a gpt2-tiny run of `steps` steps of 256 tokens, with `extra` keys added or
  // replaced.
  std::string WriteRunYaml(int servers, int trainers, int64_t steps,
                           const std::map<std::string, std::string>& extra = {},
                           const std::string& name = "run.yaml") {
    std::map<std::string, std::string> keys = {{"wandb_log_frequency", "5"},
                                               {"activation_servers", absl::StrCat(servers)},
                                               {"trainers", absl::StrCat(trainers)}};
    for (const auto& [key, value] : extra) keys[key] = value;
    return folder_.Write(name, support::Gpt2TinyRunYaml(SharedFiles::Get().dir(), steps, keys));
  }

  std::string Submit(const std::string& yaml_path) {
    Result submitted = Saectl("submit " + yaml_path);
    EXPECT_EQ(submitted.code, 0) << submitted.out << submitted.err;
    return std::string(
        absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  }

  nlohmann::json GetRun(const std::string& run_id) {
    Result got = Saectl(absl::StrCat("get runs ", run_id, " -o json"));
    EXPECT_EQ(got.code, 0) << got.err;
    nlohmann::json run = nlohmann::json::parse(got.out, nullptr, false);
    return run.is_discarded() ? nlohmann::json::object() : run;
  }

  static int64_t Int(const nlohmann::json& run, const char* key) {
    if (!run.contains(key)) return 0;
    if (run[key].is_number()) return run[key].get<int64_t>();
    int64_t value = 0;
    return absl::SimpleAtoi(run[key].get<std::string>(), &value) ? value : 0;
  }

  // Polls `saectl logs RUN` until its output contains `text`; fails after `seconds`.
  std::string WaitForLog(const std::string& run_id, const std::string& text, int seconds = 60) {
    const absl::Time give_up = absl::Now() + absl::Seconds(seconds);
    std::string logs;
    while (absl::Now() < give_up) {
      logs = Saectl("logs " + run_id).out;
      if (absl::StrContains(logs, text)) return logs;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "run " << run_id << " never logged \"" << text << "\":\n" << logs;
    return logs;
  }

  // Polls the log file of the cluster's process `name` ("trainer-0", ...) until it contains
  // `text`; fails after `seconds`.
  void WaitForProcessLog(const std::string& name, const std::string& text, int seconds = 90) {
    cluster_.WaitForProcessLog(name, text, seconds);
  }

  // Polls the run until its state is `state` (a RunState name); fails after `seconds`.
  void WaitForState(const std::string& run_id, const std::string& state, int seconds = 60) {
    const absl::Time give_up = absl::Now() + absl::Seconds(seconds);
    std::string seen;
    while (absl::Now() < give_up) {
      seen = GetRun(run_id).value("state", "");
      if (seen == state) return;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "run " << run_id << " stayed " << seen << ", never " << state;
  }

  // Polls the run until rank 0 reported step `step` or later; fails after `seconds`.
  void WaitForStep(const std::string& run_id, int64_t step, int seconds = 90) {
    const absl::Time give_up = absl::Now() + absl::Seconds(seconds);
    int64_t seen = 0;
    while (absl::Now() < give_up) {
      seen = Int(GetRun(run_id), "step");
      if (seen >= step) return;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "run " << run_id << " stayed at step " << seen << ", never " << step;
  }

  // `saectl wait RUN` succeeds, and the run trained exactly its tokens.
  void ExpectSucceeds(const std::string& run_id, int64_t total_tokens, int seconds = 180) {
    Result waited = Saectl(absl::StrCat("wait ", run_id, " --timeout ", seconds), seconds + 30);
    EXPECT_EQ(waited.code, 0) << waited.out << waited.err << Saectl("logs " + run_id).out;
    nlohmann::json run = GetRun(run_id);
    EXPECT_EQ(run.value("state", ""), "RUN_STATE_SUCCEEDED") << run.dump(2);
    EXPECT_EQ(Int(run, "tokens"), total_tokens) << run.dump(2);
  }

  TempDir folder_;
  support::CommandRunner runner_{folder_.path()};
  support::LocalCluster cluster_{folder_.path() + "/cluster", runner_};
  bool cluster_up_ = false;
};


}  // namespace sae::cluster_testing

#endif  // SAE_TESTS_CLUSTER_CLUSTER_FIXTURE_H_
