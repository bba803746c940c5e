// The whole service on loopback, driven as a user drives it: `saectl cluster up` starts the
// real sae-controller, sae-activation-server and sae-trainer processes (workers in --controller
// mode), and every check goes through saectl. The runs train a gpt2-tiny SAE (saectl model
// init) on a nanoGPT .bin of random tokens.
//
// Failures are injected as they happen in production: kill -9 of a worker or of the
// controller. Nothing in the tests brings a killed process back: the supervisor `cluster up`
// leaves behind restarts it, as Compose's restart policy or Kubernetes would, and the runs
// recover through the controller.
//
// Every test is bounded: each saectl call runs under `timeout -s KILL`, and a reaper process
// kills whatever the cluster left if the test itself dies.
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

namespace sae {
namespace {

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

TEST_F(ClusterTest, SubmittedRunSucceedsAndItsExportLoadsInSaeLensFormat) {
  StartCluster(2, 2);
  constexpr int64_t kSteps = 60;
  Result submitted = Saectl(
      "submit " + WriteRunYaml(2, 2, kSteps, {{"n_checkpoints", "2"}}) + " --name tiny -f", 240);
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  EXPECT_TRUE(absl::StrContains(submitted.out, "SUCCEEDED")) << submitted.out;
  EXPECT_TRUE(absl::StrContains(submitted.out, "final SAE at step 60")) << submitted.out;

  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_SUCCEEDED");
  EXPECT_EQ(Int(run, "step"), kSteps);
  EXPECT_EQ(Int(run, "tokens"), kSteps * 256);
  EXPECT_EQ(Int(run, "generation"), 0);
  ASSERT_TRUE(run.contains("metrics")) << run.dump(2);
  EXPECT_GT(run["metrics"].value("l0", 0.0), 0.0) << run.dump(2);
  ASSERT_EQ(run["shards"].size(), 2u) << run.dump(2);
  for (const auto& shard : run["shards"]) {
    EXPECT_FALSE(shard.value("cursor", "").empty()) << "each shard reported its cursor";
  }

  Result wide = Saectl("get runs -o wide");
  EXPECT_TRUE(absl::StrContains(wide.out, "2+2")) << wide.out;
  // The final SAE was evaluated on an activation server (n_eval_batches defaults to 10).
  ASSERT_TRUE(run.contains("latest_eval")) << run.dump(2);
  EXPECT_EQ(Int(run["latest_eval"], "step"), kSteps);
  EXPECT_TRUE(run["latest_eval"].value("final", false)) << run.dump(2);
  EXPECT_TRUE(absl::StrContains(wide.out, "CE.SCORE")) << wide.out;
  const std::string score =
      absl::StrFormat("%.4f", run["latest_eval"].value("ce_loss_score", -1.0));
  EXPECT_TRUE(absl::StrContains(wide.out, score)) << score << "\n" << wide.out;
  Result described = Saectl("describe run " + run_id);
  EXPECT_TRUE(absl::StrContains(described.out, "final SAE, step 60 on 127.0.0.1:"))
      << described.out;
  EXPECT_TRUE(absl::StrContains(Saectl("logs " + run_id).out, "EVAL_COMPLETED"));
  Result checkpoints = Saectl("checkpoints " + run_id);
  EXPECT_TRUE(absl::StrContains(checkpoints.out, "yes")) << "the final SAE\n" << checkpoints.out;

  const std::string out = folder_.path() + "/exported";
  Result exported = Saectl("export " + run_id + " --out " + out);
  ASSERT_EQ(exported.code, 0) << exported.err;
  EXPECT_TRUE(absl::StrContains(exported.out, "SAELens format: d_in 64, d_sae 256"))
      << exported.out;
  Result info = Saectl("sae info " + out);
  EXPECT_EQ(info.code, 0) << info.err;
  EXPECT_TRUE(absl::StrContains(info.out, "blocks.1.hook_resid_pre")) << info.out;
  // The final evaluation travels with the SAE, in SAELens's grouping.
  absl::StatusOr<std::string> results = ReadFile(out + "/eval_results.json");
  ASSERT_TRUE(results.ok()) << results.status();
  nlohmann::json eval = nlohmann::json::parse(*results, nullptr, false);
  ASSERT_TRUE(eval.contains("model_performance_preservation")) << *results;
  EXPECT_NEAR(eval["model_performance_preservation"].value("ce_loss_score", -1.0),
              run["latest_eval"].value("ce_loss_score", -2.0), 1e-9);
}

TEST_F(ClusterTest, PeriodicEvaluationsRunOnTheServersAndAServerKilledMidEvalFailsOnlyThatOne) {
  StartCluster(2, 1);
  constexpr int64_t kSteps = 400;
  // An evaluation every 10 steps, on 50 batches of 4 contexts: long enough (many forwards) to
  // be killed in the middle of.
  const std::string run_id = Submit(WriteRunYaml(2, 1, kSteps,
                                                 {{"n_checkpoints", "8"},
                                                  {"max_restarts", "2"},
                                                  {"eval_every_n_wandb_logs", "2"},
                                                  {"n_eval_batches", "50"}}));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  // Evaluations go to the servers in turn, the first to shard 0.
  const std::string server = ProcessOf(run_id, "WORKER_ROLE_ACTIVATION_SERVER", 0);
  WaitForProcessLog(server, "evaluating the SAE of run " + run_id);
  KillProcess(server);
  WaitForLog(run_id, "EVAL_FAILED");
  ExpectRestartedBySupervisor(server);
  ExpectSucceeds(run_id, kSteps * 256, 300);

  const std::string logs = Saectl("logs " + run_id).out;
  const size_t failed = logs.find("EVAL_FAILED");
  ASSERT_NE(failed, std::string::npos) << logs;
  EXPECT_TRUE(absl::StrContains(logs.substr(failed), "training goes on")) << logs;
  EXPECT_NE(logs.find("EVAL_COMPLETED", failed), std::string::npos)
      << "evaluations after the failure ran normally\n" << logs;
  int completed = 0;
  for (size_t at = logs.find("EVAL_COMPLETED"); at != std::string::npos;
       at = logs.find("EVAL_COMPLETED", at + 1)) {
    ++completed;
  }
  EXPECT_GE(completed, 2) << logs;
  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(Int(run["latest_eval"], "step"), kSteps) << run.dump(2);
}

TEST_F(ClusterTest, TrainerKilledMidRunIsRestartedByTheSupervisorAndTheRunSucceeds) {
  StartCluster(1, 2);
  constexpr int64_t kSteps = 1000;
  const std::string run_id =
      Submit(WriteRunYaml(1, 2, kSteps, {{"n_checkpoints", "4"}, {"max_restarts", "2"}}));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  // Rank 0 goes: the next group's rank 0 hosts its store on the same port again. It goes
  // after the checkpoint at step 250 and past it, so that the rollback skips something.
  const std::string rank0 = ProcessOf(run_id, "WORKER_ROLE_TRAINER", 0);
  WaitForProcessLog(rank0, "checkpoint at step 250:");
  WaitForProcessLog(rank0, "step 300/1000");
  KillProcess(rank0);
  ExpectRestartedBySupervisor(rank0);
  ExpectSucceeds(run_id, kSteps * 256);

  nlohmann::json run = GetRun(run_id);
  EXPECT_GE(Int(run, "generation"), 1) << run.dump(2);
  EXPECT_GT(Int(run, "tokens_skipped"), 0) << run.dump(2);
  EXPECT_GT(Int(run, "tokens_generated"), 0) << "the server reported its progress";
  const std::string logs = Saectl("logs " + run_id).out;
  EXPECT_TRUE(absl::StrContains(logs, "WORKER_LOST")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "resumes from the checkpoint at step")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "TOKENS_SKIPPED")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "tokens skipped by the restart to generation 1")) << logs;
  // n_checkpoints 4 puts a checkpoint at the last step too; the final SAE of that step replaces
  // it, so it is not uploaded.
  EXPECT_TRUE(absl::StrContains(logs, "checkpoint at step 250 (")) << logs;
  EXPECT_FALSE(absl::StrContains(logs, "checkpoint at step 1000 (")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "final SAE at step 1000 (")) << logs;
}

TEST_F(ClusterTest, KilledActivationServerIsRestartedByTheSupervisorAndTheRunRecovers) {
  // With the only server gone, the trainer cannot finish the run without the restart.
  StartCluster(1, 1);
  constexpr int64_t kSteps = 1000;
  const std::string run_id =
      Submit(WriteRunYaml(1, 1, kSteps, {{"n_checkpoints", "20"}, {"max_restarts", "2"}}));
  WaitForProcessLog("trainer-0", "uploaded the checkpoint at step 50 ");
  KillProcess("activation-server-0");
  ExpectRestartedBySupervisor("activation-server-0");
  ExpectSucceeds(run_id, kSteps * 256);
  nlohmann::json run = GetRun(run_id);
  EXPECT_GE(Int(run, "generation"), 1) << run.dump(2);
  const std::string logs = Saectl("logs " + run_id).out;
  EXPECT_TRUE(absl::StrContains(logs, "activation server shard 0")) << logs;
}

TEST_F(ClusterTest, RunCompletesWhenTheControllerIsKilledAndTheSupervisorStartsItAgain) {
  StartCluster(1, 2, /*lease_seconds=*/5);
  constexpr int64_t kSteps = 1000;
  const std::string run_id = Submit(WriteRunYaml(1, 2, kSteps, {{"n_checkpoints", "20"}}));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  const std::string rank0 = ProcessOf(run_id, "WORKER_ROLE_TRAINER", 0);
  WaitForProcessLog(rank0, "uploaded the checkpoint at step 50 ");
  KillProcess("controller");
  // On its port and data folder again; the workers carry on meanwhile.
  ExpectRestartedBySupervisor("controller");
  ExpectSucceeds(run_id, kSteps * 256);
  nlohmann::json run = GetRun(run_id);
  const std::string logs = Saectl("logs " + run_id).out;
  EXPECT_TRUE(absl::StrContains(logs, "final SAE at step 1000")) << logs;
}

TEST_F(ClusterTest, StoppedRunEndsStoppedAndKeepsACheckpoint) {
  StartCluster(1, 2);
  const std::string run_id = Submit(WriteRunYaml(1, 2, 100000));
  WaitForStep(run_id, 20);
  Result stopped = Saectl("stop " + run_id);
  EXPECT_EQ(stopped.code, 0) << stopped.err;
  Result waited = Saectl("wait " + run_id + " --timeout 60", 90);
  EXPECT_EQ(waited.code, 3) << waited.out << waited.err;
  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_STOPPED") << run.dump(2);
  ASSERT_TRUE(run.contains("latest_checkpoint_step")) << run.dump(2);
  const int64_t step = Int(run, "latest_checkpoint_step");
  EXPECT_GT(step, 0);
  EXPECT_TRUE(absl::StrContains(run.value("message", ""), "stopped by the user at step"))
      << run.dump(2);
  const std::string out = folder_.path() + "/stopped";
  Result exported = Saectl(absl::StrCat("export ", run_id, " --checkpoint ", step, " --out ", out));
  EXPECT_EQ(exported.code, 0) << exported.err;
  EXPECT_TRUE(fs::exists(out + "/sae_weights.safetensors"));
}

TEST_F(ClusterTest, SecondRunWaitsPendingWhileTheFirstHoldsTheWorkersThenRuns) {
  StartCluster(1, 1);
  // The first run is far longer than the test: it holds the workers until it is stopped, so
  // the second one's wait does not depend on how fast this machine trains.
  const std::string first = Submit(WriteRunYaml(1, 1, 100000, {}, "first.yaml"));
  const std::string second = Submit(WriteRunYaml(1, 1, 40, {}, "second.yaml"));
  WaitForStep(first, 20);
  nlohmann::json waiting = GetRun(second);
  EXPECT_EQ(waiting.value("state", ""), "RUN_STATE_PENDING") << waiting.dump(2);
  EXPECT_TRUE(absl::StrContains(waiting.value("message", ""), "waiting")) << waiting.dump(2);
  Result stopped = Saectl("stop " + first);
  EXPECT_EQ(stopped.code, 0) << stopped.err;
  WaitForState(first, "RUN_STATE_STOPPED");
  ExpectSucceeds(second, int64_t{40} * 256);
  nlohmann::json run = GetRun(second);
  EXPECT_GE(Int(run, "start_time_unix_ms"), Int(GetRun(first), "end_time_unix_ms"));
}

TEST_F(ClusterTest, SubmitOfABadRunYamlExitsTwoNamingTheKeyAndLineAndQueuesNothing) {
  StartCluster(1, 1);
  const std::string path = WriteRunYaml(1, 1, 40, {{"l1_coefficent", "0.001"}});
  Result submitted = Saectl("submit " + path);
  EXPECT_EQ(submitted.code, 2) << submitted.out << submitted.err;
  EXPECT_TRUE(submitted.out.empty()) << submitted.out;
  EXPECT_TRUE(absl::StrContains(submitted.err, "l1_coefficent")) << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, "run.yaml:7")) << submitted.err;
  Result runs = Saectl("get runs -o json");
  EXPECT_EQ(runs.code, 0) << runs.err;
  EXPECT_FALSE(absl::StrContains(runs.out, "run_id")) << runs.out;
}

TEST_F(ClusterTest, SweepTheTrainersCannotHoldIsRefusedAtSubmitWithTheEstimate) {
  support::LocalClusterOptions options;
  options.trainer_memory_limit = "3MiB";
  Result up = cluster_.Up(options);
  cluster_up_ = true;
  ASSERT_EQ(up.code, 0) << up.out << up.err;
  Result status = Saectl("cluster status --data-dir " + DataDir());
  EXPECT_TRUE(absl::StrContains(status.out, "MEMORY")) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, "3.0 MiB")) << status.out;

  // saectl reads the model's config.json and sends its estimate; the controller compares it
  // with what the trainer reported when it registered.
  const std::string big = WriteRunYaml(
      1, 1, 40, {{"expansion_factor", "64"}, {"sweep", "{l1_coefficient: [0.001, 0.002]}"}});
  Result refused = Saectl("submit " + big);
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_TRUE(refused.out.empty()) << refused.out;
  for (const char* part : {"memory estimate per trainer", "SAE blocks.", "the run needs about",
                           "only 0 of the 1 registered trainers", "3.0 MiB", "--memory-limit"}) {
    EXPECT_TRUE(absl::StrContains(refused.err, part)) << part << " not in: " << refused.err;
  }
  Result runs = Saectl("get runs -o json");
  EXPECT_FALSE(absl::StrContains(runs.out, "run_id")) << runs.out;

  // A run that fits is accepted and trains on that trainer.
  const std::string run_id = Submit(WriteRunYaml(1, 1, 40, {}, "small.yaml"));
  ExpectSucceeds(run_id, int64_t{40} * 256);
  EXPECT_GT(Int(GetRun(run_id), "memory_estimate_bytes"), 0);
  Result described = Saectl("describe run " + run_id);
  EXPECT_TRUE(absl::StrContains(described.out, "Memory per trainer")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "every trainer holds every SAE")) << described.out;
}

TEST_F(ClusterTest, RunWhoseDInDisagreesWithTheModelFailsAtOnceNamingTheKey) {
  StartCluster(1, 1);
  const std::string run_id = Submit(WriteRunYaml(1, 1, 40, {{"d_in", "100"}}));
  Result waited = Saectl("wait " + run_id + " --timeout 60", 90);
  EXPECT_EQ(waited.code, 1) << waited.out << waited.err;
  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_FAILED");
  EXPECT_EQ(Int(run, "generation"), 0) << "a config error is not retried";
  EXPECT_TRUE(absl::StrContains(run.value("message", ""), "d_in")) << run.dump(2);
}

TEST_F(ClusterTest, RunWhoseDatasetIsMissingFailsAtOnceNamingTheFile) {
  StartCluster(1, 1);
  const std::string run_id =
      Submit(WriteRunYaml(1, 1, 40, {{"dataset_path", "/nonexistent/tokens.bin"}}));
  Result waited = Saectl("wait " + run_id + " --timeout 60", 90);
  EXPECT_EQ(waited.code, 1) << waited.out << waited.err;
  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_FAILED");
  EXPECT_EQ(Int(run, "generation"), 0) << "a config error is not retried";
  EXPECT_TRUE(absl::StrContains(run.value("message", ""), "/nonexistent/tokens.bin"))
      << run.dump(2);
}

TEST_F(ClusterTest, NoLogEventOrDescribeOutputEverContainsTheAuthToken) {
  // Every process and saectl call of this test takes the token from the environment.
  constexpr char kToken[] = "cluster-secret-token-31337";
  ::setenv("SAE_AUTH_TOKEN", kToken, 1);
  StartCluster(1, 1);
  Result refused = Saectl("get runs --token a-wrong-token-27182");
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  const std::string run_id = Submit(WriteRunYaml(1, 1, 40, {{"n_checkpoints", "1"}}));
  ExpectSucceeds(run_id, int64_t{40} * 256);

  std::map<std::string, std::string> outputs = {
      {"describe run", Saectl("describe run " + run_id).out},
      {"logs", Saectl("logs " + run_id).out},
      {"get runs -o yaml", Saectl("get runs " + run_id + " -o yaml").out},
      {"cluster status", Saectl("cluster status --data-dir " + DataDir()).out},
      {"cluster.json", *ReadFile(DataDir() + "/cluster.json")}};
  for (const auto& entry : fs::recursive_directory_iterator(DataDir() + "/logs")) {
    if (entry.is_regular_file()) outputs[entry.path().string()] = *ReadFile(entry.path());
  }
  ASSERT_GE(outputs.size(), 8u) << "the logs of the controller, both workers and the supervisor";
  for (const auto& [what, text] : outputs) {
    EXPECT_FALSE(absl::StrContains(text, kToken)) << what << " contains the token";
    EXPECT_FALSE(absl::StrContains(text, "a-wrong-token-27182")) << what << " contains a token";
  }
  // The refused call was logged, without what it carried.
  EXPECT_TRUE(absl::StrContains(outputs[DataDir() + "/logs/controller.log"], "refused a call"))
      << outputs[DataDir() + "/logs/controller.log"];
}

// ---- Many SAEs from one activation stream (docs/config.md, "Many SAEs in one run") ----

// The largest difference between the parameters of two SAELens folders; a failure when either
// cannot be read.
double MaxDifference(const std::string& a, const std::string& b) {
  absl::StatusOr<io::SaeLensSae> x = io::ReadSaeLens(a);
  absl::StatusOr<io::SaeLensSae> y = io::ReadSaeLens(b);
  EXPECT_TRUE(x.ok()) << a << ": " << x.status();
  EXPECT_TRUE(y.ok()) << b << ": " << y.status();
  if (!x.ok() || !y.ok()) return INFINITY;
  double most = 0;
  for (auto [p, q] : {std::pair{x->W_enc, y->W_enc}, std::pair{x->b_enc, y->b_enc},
                      std::pair{x->W_dec, y->W_dec}, std::pair{x->b_dec, y->b_dec}}) {
    EXPECT_TRUE(p.sizes() == q.sizes()) << a << " and " << b;
    if (p.sizes() != q.sizes()) return INFINITY;
    most = std::max(most, (p - q).abs().max().item<double>());
  }
  return most;
}

// A run of `steps` steps whose SAEs are given by `many` (hook_points: and sweep: lines): the
// default hook_point is left out when hook_points: names the hooks.
std::string ManySaesYaml(const std::string& dir, int servers, int trainers, int64_t steps,
                         std::map<std::string, std::string> keys) {
  keys["activation_servers"] = absl::StrCat(servers);
  keys["trainers"] = absl::StrCat(trainers);
  keys.emplace("wandb_log_frequency", "5");
  std::string yaml = support::Gpt2TinyRunYaml(dir, steps, keys);
  if (keys.count("hook_points") > 0) {
    const std::string line = "hook_point: blocks.1.hook_resid_pre\n";
    yaml.erase(yaml.find(line), line.size());
  }
  return yaml;
}

// Two hooks times two l1 coefficients: four SAEs from one stream. With shuffle false the
// cluster's stream is the one `saectl train` reads, so every SAE the cluster exports equals the
// SAE of the same name from `saectl train` of the same run.yaml (itself tested equal to separate
// runs: tests/cli/saectl_sweep_test.sh).
TEST_F(ClusterTest, SweepAndHookPointsOnTheClusterEqualTheSameRunInSaectlTrain) {
  StartCluster(1, 1);
  constexpr int64_t kSteps = 40;
  const std::vector<std::string> names = {
      "blocks.0.hook_resid_pre/l1=0.0004", "blocks.0.hook_resid_pre/l1=0.003",
      "blocks.1.hook_resid_pre/l1=0.0004", "blocks.1.hook_resid_pre/l1=0.003"};
  const std::string yaml = folder_.Write(
      "many.yaml",
      ManySaesYaml(SharedFiles::Get().dir(), 1, 1, kSteps,
                   {{"shuffle", "false"},
                    {"n_checkpoints", "2"},
                    {"n_eval_batches", "1"},
                    {"eval_batch_size_prompts", "4"},
                    {"hook_points", "[blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]"},
                    {"sweep", "\n  l1_coefficient: [0.0004, 0.003]"}}));
  Result submitted = Saectl("submit " + yaml + " --name many -f", 240);
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));

  nlohmann::json run = GetRun(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_SUCCEEDED") << run.dump(2);
  ASSERT_EQ(run["saes"].size(), names.size()) << run.dump(2);
  for (size_t i = 0; i < names.size(); ++i) {
    const nlohmann::json& sae = run["saes"][i];
    EXPECT_EQ(sae.value("name", ""), names[i]) << run.dump(2);
    EXPECT_EQ(Int(sae, "step"), kSteps) << run.dump(2);
    EXPECT_GT(sae["metrics"].value("l0", 0.0), 0.0) << run.dump(2);
  }
  // Each SAE has its own evaluation, on its own hook.
  const std::string logs = Saectl("logs " + run_id).out;
  for (const std::string& name : names) {
    EXPECT_TRUE(absl::StrContains(logs, "final evaluation of SAE " + name + " at step 40"))
        << logs;
  }
  Result described = Saectl("describe run " + run_id);
  EXPECT_TRUE(absl::StrContains(described.out, "4 from one activation stream")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, names[3] + "  step 40  l0 ")) << described.out;
  Result wide = Saectl("get runs -o wide");
  EXPECT_TRUE(absl::StrContains(wide.out, "SAES")) << wide.out;
  // The run's row: WORKERS 1+1, then SAES 4.
  const size_t row = wide.out.find(run_id);
  ASSERT_NE(row, std::string::npos) << wide.out;
  const std::vector<std::string> cells = absl::StrSplit(
      wide.out.substr(row, wide.out.find('\n', row) - row), ' ', absl::SkipEmpty());
  auto workers = std::find(cells.begin(), cells.end(), "1+1");
  ASSERT_TRUE(workers != cells.end() && workers + 1 != cells.end()) << wide.out;
  EXPECT_EQ(*(workers + 1), "4") << wide.out;

  // Every SAE into one folder each; one SAE alone with --sae; an unknown name is refused.
  const std::string all = folder_.path() + "/exported";
  Result exported = Saectl("export " + run_id + " --out " + all);
  ASSERT_EQ(exported.code, 0) << exported.out << exported.err;
  const std::string one = folder_.path() + "/one";
  Result exported_one = Saectl("export " + run_id + " --sae " + names[1] + " --out " + one);
  ASSERT_EQ(exported_one.code, 0) << exported_one.out << exported_one.err;
  EXPECT_TRUE(absl::StrContains(exported_one.out, "SAELens format: d_in 64, d_sae 256"))
      << exported_one.out;
  Result unknown = Saectl("export " + run_id + " --sae blocks.0.hook_resid_pre --out " +
                          folder_.path() + "/none");
  EXPECT_NE(unknown.code, 0);
  EXPECT_TRUE(absl::StrContains(unknown.err, "has no SAE named")) << unknown.err;

  const std::string local = folder_.path() + "/local";
  Result trained = Saectl("train " + yaml + " --output " + local, 240);
  ASSERT_EQ(trained.code, 0) << trained.out << trained.err;
  for (const std::string& name : names) {
    EXPECT_TRUE(fs::exists(all + "/" + name + "/eval_results.json")) << name;
    const double difference = MaxDifference(all + "/" + name, local + "/saes/" + name + "/final");
    EXPECT_LE(difference, 1e-5) << name;
  }
  EXPECT_EQ(MaxDifference(one, all + "/" + names[1]), 0.0);
  // The l1 coefficient made a difference: the SAEs are not all one.
  EXPECT_GT(MaxDifference(all + "/" + names[0], all + "/" + names[1]), 1e-4);
}

// kill -9 of trainer rank 0 in the middle of a run of two SAEs on two trainers: the supervisor
// restarts it, the next generation resumes every SAE from the last checkpoint, and each SAE
// finishes and exports.
TEST_F(ClusterTest, TrainerKilledMidSweepResumesEverySaeAndTheRunSucceeds) {
  StartCluster(1, 2);
  constexpr int64_t kSteps = 400;
  const std::string run_id = Submit(folder_.Write(
      "many.yaml", ManySaesYaml(SharedFiles::Get().dir(), 1, 2, kSteps,
                                {{"n_checkpoints", "4"},
                                 {"max_restarts", "2"},
                                 {"n_eval_batches", "1"},
                                 {"eval_batch_size_prompts", "4"},
                                 {"eval_every_n_wandb_logs", "4"},
                                 {"sweep", "\n  l1_coefficient: [0.0004, 0.003]"}})));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  const std::string rank0 = ProcessOf(run_id, "WORKER_ROLE_TRAINER", 0);
  WaitForProcessLog(rank0, "checkpoint at step 100:");
  WaitForProcessLog(rank0, "step 130/400");
  // Per-SAE Prometheus series carry the SAE's name: the trainer's and the controller's.
  const std::string sae = "blocks.1.hook_resid_pre/l1=0.003";
  const std::string trainer_metrics = Scrape(rank0);
  EXPECT_TRUE(absl::StrContains(trainer_metrics, absl::StrCat("sae_train_l0{run_id=\"", run_id,
                                                              "\",rank=\"0\",sae=\"", sae,
                                                              "\"} ")));
  // No run-level set without the label beside them (it would draw a line at zero).
  EXPECT_FALSE(absl::StrContains(trainer_metrics,
                                 absl::StrCat("sae_train_l0{run_id=\"", run_id, "\",rank=\"0\"} ")))
      << trainer_metrics;
  EXPECT_TRUE(absl::StrContains(Scrape("controller"),
                                absl::StrCat("sae_controller_sae_l0{run_id=\"", run_id,
                                             "\",sae=\"", sae, "\"} ")));
  KillProcess(rank0);
  ExpectRestartedBySupervisor(rank0);
  ExpectSucceeds(run_id, kSteps * 256);

  nlohmann::json run = GetRun(run_id);
  EXPECT_GE(Int(run, "generation"), 1) << run.dump(2);
  ASSERT_EQ(run["saes"].size(), 2u) << run.dump(2);
  for (const auto& sae : run["saes"]) EXPECT_EQ(Int(sae, "step"), kSteps) << run.dump(2);
  const std::string logs = Saectl("logs " + run_id).out;
  EXPECT_TRUE(absl::StrContains(logs, "resumes from the checkpoint at step")) << logs;
  // Periodic evaluations (every 20 steps) take turns between the SAEs: each had some.
  for (const char* l1 : {"0.0004", "0.003"}) {
    const std::string what = absl::StrCat("evaluation of SAE blocks.1.hook_resid_pre/l1=", l1);
    int periodic = 0;
    for (size_t at = logs.find(what); at != std::string::npos; at = logs.find(what, at + 1)) {
      if (at < 6 || logs.compare(at - 6, 6, "final ") != 0) ++periodic;
    }
    EXPECT_GE(periodic, 1) << what << "\n" << logs;
  }
  const std::string out = folder_.path() + "/exported";
  Result exported = Saectl("export " + run_id + " --out " + out);
  ASSERT_EQ(exported.code, 0) << exported.out << exported.err;
  for (const char* l1 : {"0.0004", "0.003"}) {
    const std::string sae = absl::StrCat(out, "/blocks.1.hook_resid_pre/l1=", l1);
    EXPECT_TRUE(fs::exists(sae + "/sae_weights.safetensors")) << sae;
    EXPECT_TRUE(fs::exists(sae + "/eval_results.json")) << sae;
  }
}

}  // namespace
}  // namespace sae
