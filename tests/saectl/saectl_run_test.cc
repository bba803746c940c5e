// saectl's run and cluster commands, run as a user would: the saectl binary against a cluster
// it starts itself (`saectl cluster up`), whose workers are stand-ins (sae_fake_worker) that
// follow the real protocol. Output formats and exit codes: 0 succeeded, 1 failed or RPC error,
// 2 usage or validation error, 3 stopped, timed out or detached.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/command.h"
#include "support/local_cluster.h"
#include "support/temp_dir.h"

namespace sae {
namespace {

namespace fs = std::filesystem;
using support::TempDir;

using Result = support::CommandResult;
using support::Cmdline;
using support::SaectlPath;

// A run.yaml of `steps` steps of 64 tokens for the given gang.
std::string RunYaml(int servers, int trainers, int steps, int max_restarts = 3) {
  return absl::StrCat(
      "model_path: /models/gpt2-tiny\ndataset_path: /data/corpus.txt\n"
      "hook_point: blocks.0.hook_resid_pre\nd_in: 64\nexpansion_factor: 2\n"
      "train_batch_size: 64\ntotal_training_tokens: ",
      steps * 64, "\nlr_warm_up_steps: 0\nactivation_servers: ", servers, "\ntrainers: ", trainers,
      "\nmax_restarts: ", max_restarts, "\n");
}

class SaectlTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("SAECTL_SERVER", "127.0.0.1:1", 1); }

  void TearDown() override {
    if (!cluster_up_) return;
    // Whatever `cluster down` left behind is this test's to end (Down ends it).
    std::vector<std::string> survivors;
    Result down = cluster_.Down(/*down_timeout_seconds=*/5, /*timeout_seconds=*/90, &survivors);
    EXPECT_EQ(down.code, 0) << down.err;
    for (const std::string& process : survivors) {
      ADD_FAILURE() << "still running after cluster down: " << process;
    }
  }

  // Runs saectl with `args` (split by the shell), killed after `timeout_seconds`.
  Result Saectl(const std::string& args, int timeout_seconds = 90) {
    return runner_.Saectl(args, timeout_seconds);
  }

  std::string DataDir() const { return cluster_.data_dir(); }

  std::string WriteRunYaml(const std::string& yaml, const std::string& name = "run.yaml") {
    return folder_.Write(name, yaml);
  }

  // `saectl cluster up` with stand-in workers; points SAECTL_SERVER at its controller.
  void StartCluster(int servers, int trainers, double lease_seconds = 3, int max_restarts = 0) {
    fs::path bin = folder_.path() + "/bin";
    fs::create_directories(bin);
    fs::create_symlink(support::BinaryPath("sae-controller"), bin / "sae-controller");
    fs::create_symlink(support::TestBinaryPath("sae_fake_worker"), bin / "sae-activation-server");
    fs::create_symlink(support::TestBinaryPath("sae_fake_worker"), bin / "sae-trainer");
    support::LocalClusterOptions options;
    options.bin_dir = bin.string();
    options.activation_servers = servers;
    options.trainers = trainers;
    options.lease_seconds = lease_seconds;
    options.threads = 0;
    options.wait_seconds = 30;
    options.max_restarts = max_restarts;
    Result up = cluster_.Up(options);
    ASSERT_EQ(up.code, 0) << up.out << up.err;
    cluster_up_ = true;
    ASSERT_FALSE(support::LocalCluster::ServerAddress(up).empty()) << up.out;
  }

  // The run id `submit` printed on the first line of stdout.
  static std::string RunId(const Result& submitted) {
    return std::string(
        absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  }

  nlohmann::json GetRunJson(const std::string& run_id) {
    Result got = Saectl(absl::StrCat("get runs ", run_id, " -o json"));
    EXPECT_EQ(got.code, 0) << got.err;
    return nlohmann::json::parse(got.out, nullptr, false);
  }

  // Polls `get runs RUN -o json` until `state` (a RunState name); fails after 30 s.
  void WaitForState(const std::string& run_id, const std::string& state) {
    absl::Time give_up = absl::Now() + absl::Seconds(30);
    std::string seen;
    while (absl::Now() < give_up) {
      nlohmann::json run = GetRunJson(run_id);
      seen = run.value("state", "");
      if (seen == state) return;
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "run " << run_id << " stayed " << seen << ", never " << state;
  }

  TempDir folder_;
  support::CommandRunner runner_{folder_.path()};
  support::LocalCluster cluster_{folder_.path() + "/cluster", runner_};
  bool cluster_up_ = false;
};

TEST_F(SaectlTest, SubmitOfABadRunYamlExitsTwoNamingTheKeyAndLine) {
  std::string path = WriteRunYaml(RunYaml(1, 1, 10) + "l1_coefficent: 0.001\n");
  Result submitted = Saectl("submit " + path);
  EXPECT_EQ(submitted.code, 2);
  EXPECT_TRUE(submitted.out.empty()) << submitted.out;
  EXPECT_TRUE(absl::StrContains(submitted.err, "run.yaml:12")) << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, "l1_coefficent")) << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, "l1_coefficient")) << "suggests the known key";

  Result overridden = Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 10), "ok.yaml") +
                             " --set train_batch_size=many");
  EXPECT_EQ(overridden.code, 2);
  EXPECT_TRUE(absl::StrContains(overridden.err, "--set")) << overridden.err;
  EXPECT_TRUE(absl::StrContains(overridden.err, "train_batch_size")) << overridden.err;

  EXPECT_EQ(Saectl("submit /nonexistent/run.yaml").code, 2);
  EXPECT_EQ(Saectl("submit").code, 2) << "a missing argument is a usage error";
}

TEST_F(SaectlTest, DryRunPrintsTheResolvedConfigAndContactsNobody) {
  Result dry =
      Saectl("submit " + WriteRunYaml(RunYaml(1, 2, 10)) + " --set lr=0.001 --name demo --dry-run");
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_TRUE(absl::StrContains(dry.out, "lr: 0.001")) << dry.out;
  EXPECT_TRUE(absl::StrContains(dry.out, "run_name: demo")) << dry.out;
  EXPECT_TRUE(absl::StrContains(dry.out, "trainers: 2")) << dry.out;
}

TEST_F(SaectlTest, UnreachableControllerExitsOneSayingWhere) {
  Result listed = Saectl("get runs --server 127.0.0.1:1 --request-timeout 2");
  EXPECT_EQ(listed.code, 1);
  EXPECT_TRUE(absl::StrContains(listed.err, "127.0.0.1:1")) << listed.err;
}

TEST_F(SaectlTest, ClusterRunsASubmittedRunToSuccessAndExportsItInSaeLensFormat) {
  StartCluster(1, 2);
  Result status = Saectl("cluster status --data-dir " + DataDir());
  EXPECT_EQ(status.code, 0) << status.err;
  for (const char* process : {"controller", "activation-server-0", "trainer-0", "trainer-1"}) {
    EXPECT_TRUE(absl::StrContains(status.out, process)) << status.out;
  }
  EXPECT_FALSE(absl::StrContains(status.out, "not registered")) << status.out;

  Result submitted = Saectl("submit " + WriteRunYaml(RunYaml(1, 2, 40)) + " --name quick -f");
  EXPECT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  std::string run_id = RunId(submitted);
  EXPECT_TRUE(absl::StartsWith(run_id, "quick-")) << run_id;
  // Not a terminal: plain event lines, no progress bar.
  EXPECT_FALSE(absl::StrContains(submitted.out, "\r"));
  EXPECT_TRUE(absl::StrContains(submitted.out, "CHECKPOINT_COMMITTED")) << submitted.out;
  EXPECT_TRUE(absl::StrContains(submitted.out, "SUCCEEDED")) << submitted.out;

  Result table = Saectl("get runs");
  EXPECT_EQ(table.code, 0);
  EXPECT_TRUE(absl::StartsWith(table.out, "RUN ")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, run_id));
  EXPECT_TRUE(absl::StrContains(table.out, "100%"));
  Result wide = Saectl("get runs -o wide");
  EXPECT_TRUE(absl::StrContains(wide.out, "EXPL.VAR")) << wide.out;
  EXPECT_TRUE(absl::StrContains(wide.out, "1+2")) << wide.out;
  nlohmann::json run = GetRunJson(run_id);
  EXPECT_EQ(run.value("state", ""), "RUN_STATE_SUCCEEDED");
  EXPECT_EQ(run.value("final_checkpoint_step", ""), "40");
  Result yaml = Saectl("get runs -o yaml");
  EXPECT_TRUE(absl::StrContains(yaml.out, "state: RUN_STATE_SUCCEEDED")) << yaml.out;
  EXPECT_TRUE(absl::StrContains(yaml.out, "config_yaml: |")) << yaml.out;

  Result described = Saectl("describe run " + run_id);
  EXPECT_EQ(described.code, 0);
  for (const char* section : {"State:            SUCCEEDED", "Workers:", "Checkpoints:",
                              "State history:", "Last error:", "Config:", "trainers: 2"}) {
    EXPECT_TRUE(absl::StrContains(described.out, section)) << section << "\n" << described.out;
  }

  Result logs = Saectl("logs " + run_id);
  std::vector<std::string> lines = absl::StrSplit(logs.out, '\n', absl::SkipEmpty());
  ASSERT_GT(lines.size(), 5u);
  EXPECT_TRUE(absl::StartsWith(absl::StripLeadingAsciiWhitespace(lines[0]), "1  ")) << lines[0];
  Result since = Saectl("logs " + run_id + " --since 3");
  EXPECT_TRUE(absl::StartsWith(absl::StripLeadingAsciiWhitespace(since.out), "4  ")) << since.out;
  EXPECT_EQ(static_cast<size_t>(std::count(since.out.begin(), since.out.end(), '\n')),
            lines.size() - 3);

  Result checkpoints = Saectl("checkpoints " + run_id);
  EXPECT_TRUE(absl::StrContains(checkpoints.out, "FINAL")) << checkpoints.out;
  EXPECT_TRUE(absl::StrContains(checkpoints.out, "yes")) << checkpoints.out;

  std::string out = folder_.path() + "/exported";
  Result exported = Saectl("export " + run_id + " --out " + out);
  EXPECT_EQ(exported.code, 0) << exported.err;
  EXPECT_TRUE(absl::StrContains(exported.out, "SAELens format: d_in 64, d_sae 128"))
      << exported.out;
  EXPECT_TRUE(fs::exists(out + "/cfg.json"));
  EXPECT_TRUE(fs::exists(out + "/sae_weights.safetensors"));
  EXPECT_EQ(Saectl("export " + run_id + " --out " + out).code, 2) << "refuses a non-empty --out";

  EXPECT_EQ(Saectl("wait " + run_id).code, 0);
  EXPECT_EQ(Saectl("delete " + run_id).code, 0);
  EXPECT_EQ(Saectl("get runs " + run_id).code, 2);
}

TEST_F(SaectlTest, SecondRunWaitsPendingUntilTheFirstFinishes) {
  StartCluster(1, 1);
  // 2000 steps of 15 ms: long enough that the first run still holds the workers when the
  // second is submitted and read back, even on a loaded machine (300 steps were not).
  std::string first = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 2000), "long.yaml")));
  std::string second = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 10))));
  EXPECT_EQ(GetRunJson(second).value("state", ""), "RUN_STATE_PENDING");
  EXPECT_EQ(Saectl("wait " + first + " --timeout 180").code, 0);
  EXPECT_EQ(Saectl("wait " + second + " --timeout 60").code, 0);
}

TEST_F(SaectlTest, StoppedRunEndsWithExitThreeAndKeepsACheckpoint) {
  StartCluster(1, 1);
  std::string run_id = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 1000000))));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  // Stop once the trainer reported a step (rather than after a fixed delay).
  auto step = [&] {
    const nlohmann::json run = GetRunJson(run_id);
    if (!run.contains("step")) return int64_t{0};
    return run["step"].is_string() ? int64_t{std::stoll(run["step"].get<std::string>())}
                                   : run["step"].get<int64_t>();
  };
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (step() == 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(100));
  ASSERT_GT(step(), 0) << "the trainer never reported a step";
  Result stopped = Saectl("stop " + run_id);
  EXPECT_EQ(stopped.code, 0) << stopped.err;
  EXPECT_TRUE(absl::StrContains(stopped.out, "stop requested")) << stopped.out;
  Result waited = Saectl("wait " + run_id + " --timeout 30");
  EXPECT_EQ(waited.code, 3) << waited.out << waited.err;
  EXPECT_TRUE(absl::StrContains(waited.out, "STOPPED")) << waited.out;
  EXPECT_TRUE(absl::StrContains(Saectl("checkpoints " + run_id).out, "no")) << "a checkpoint";
}

TEST_F(SaectlTest, KilledTrainerFailsARunWithoutRestartsAndWaitExitsOne) {
  StartCluster(1, 1, /*lease_seconds=*/1);
  std::string run_id = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 1000000, 0))));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  auto record = nlohmann::json::parse(*ReadFile(DataDir() + "/cluster.json"));
  for (const auto& process : record["processes"]) {
    if (process["name"] == "trainer-0") ::kill(process["pid"].get<int>(), SIGKILL);
  }
  Result waited = Saectl("wait " + run_id + " --timeout 30");
  EXPECT_EQ(waited.code, 1) << waited.out << waited.err;
  EXPECT_TRUE(absl::StrContains(waited.err, "no restarts left")) << waited.err;
  Result described = Saectl("describe run " + run_id);
  EXPECT_TRUE(absl::StrContains(described.out, "Last error:        ")) << described.out;
  EXPECT_TRUE(absl::StrContains(described.out, "no heartbeat")) << described.out;
  // The dead process shows in the cluster's status.
  EXPECT_TRUE(absl::StrContains(Saectl("cluster status --data-dir " + DataDir()).out, "exited"));
}

TEST_F(SaectlTest, WaitTimesOutWithExitThree) {
  StartCluster(1, 1);
  std::string run_id = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 4, 10))));
  Result waited = Saectl("wait " + run_id + " --timeout 1");
  EXPECT_EQ(waited.code, 3) << waited.err;
  EXPECT_TRUE(absl::StrContains(waited.err, "did not finish within 1s")) << waited.err;
  Result deleted = Saectl("delete " + run_id);
  EXPECT_EQ(deleted.code, 2) << "an active run cannot be deleted";
  EXPECT_TRUE(absl::StrContains(deleted.err, "stop it first")) << deleted.err;
}

TEST_F(SaectlTest, CtrlCDetachesAFollowWithoutStoppingTheRun) {
  StartCluster(1, 1);
  std::string run_id = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 4, 10))));
  std::string err = folder_.path() + "/follow.err";
  std::string out = folder_.path() + "/follow.out";
  pid_t pid = ::fork();
  if (pid == 0) {
    std::freopen(out.c_str(), "w", stdout);
    std::freopen(err.c_str(), "w", stderr);
    ::execl(SaectlPath().c_str(), "saectl", "logs", run_id.c_str(), "-f", nullptr);
    ::_exit(127);
  }
  // The first event line on stdout says saectl follows the run, with its Ctrl-C handler in
  // place (it is installed before the watch starts).
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (ReadFile(out).value_or("").empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(ReadFile(out).value_or("").empty()) << "saectl logs -f printed no event";
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_TRUE(absl::StrContains(ReadFile(err).value_or(""), "detached")) << *ReadFile(err);
  EXPECT_EQ(GetRunJson(run_id).value("state", ""), "RUN_STATE_PENDING");
  // The run says what it waits for, by role and count.
  const std::string waiting = "waiting for workers: 4 trainers needed, 1 idle";
  Result described = Saectl("describe run " + run_id);
  EXPECT_TRUE(absl::StrContains(described.out, waiting)) << described.out;
  Result wide = Saectl("get runs -o wide");
  EXPECT_TRUE(absl::StrContains(wide.out, waiting)) << wide.out;
}

TEST_F(SaectlTest, ClusterUpRefusesASecondClusterInTheSameFolder) {
  StartCluster(0, 1);
  Result again = Saectl(absl::StrCat("cluster up --data-dir ", DataDir(), " --bin-dir ",
                                     folder_.path(), "/bin --port 0 --activation-servers 0"));
  EXPECT_EQ(again.code, 2) << again.err;
  EXPECT_TRUE(absl::StrContains(again.err, "already up")) << again.err;
  Result missing = Saectl(absl::StrCat("cluster up --data-dir ", folder_.path(),
                                       "/other --bin-dir /nonexistent --port 0"));
  EXPECT_EQ(missing.code, 2);
  EXPECT_TRUE(absl::StrContains(missing.err, "sae-controller")) << missing.err;
}

TEST_F(SaectlTest, ClusterDownStopsEveryProcessAndKeepsTheRuns) {
  StartCluster(1, 1);
  std::string run_id = RunId(Saectl("submit " + WriteRunYaml(RunYaml(1, 1, 10))));
  EXPECT_EQ(Saectl("wait " + run_id + " --timeout 30").code, 0);
  auto record = nlohmann::json::parse(*ReadFile(DataDir() + "/cluster.json"));
  Result down = Saectl("cluster down --data-dir " + DataDir());
  cluster_up_ = false;
  EXPECT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(absl::StrContains(down.out, "stopped the supervisor and 3 processes")) << down.out;
  record["processes"].push_back(record["supervisor"]);
  for (const auto& process : record["processes"]) {
    // Gone, or a zombie waiting for init: either way it runs no more.
    EXPECT_TRUE(Cmdline(process["pid"].get<int>()).empty()) << process.dump();
  }
  EXPECT_EQ(Saectl("cluster status --data-dir " + DataDir()).code, 2);
  // The runs are still there for the next `cluster up`.
  fs::remove_all(folder_.path() + "/bin");
  StartCluster(1, 1);
  EXPECT_EQ(GetRunJson(run_id).value("state", ""), "RUN_STATE_SUCCEEDED");
}

TEST_F(SaectlTest, SupervisorRestartsAKilledWorkerAndGivesUpOnACrashLoopSayingSo) {
  StartCluster(1, 1, /*lease_seconds=*/3, /*max_restarts=*/2);
  const std::string supervisor_log = DataDir() + "/logs/supervisor.log";
  cluster_.KillProcess("trainer-0");
  nlohmann::json trainer = cluster_.WaitForRestart("trainer-0", 1, 30);
  EXPECT_EQ(trainer.value("last_exit", ""), "killed by SIGKILL") << trainer.dump();
  Result status = Saectl("cluster status --data-dir " + DataDir());
  EXPECT_EQ(status.code, 0) << status.err;
  EXPECT_TRUE(absl::StrContains(status.out, "killed by SIGKILL")) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, "RESTARTS")) << status.out;

  // The trainer's program now fails at once: every restart crashes, a crash loop.
  const std::string crash = folder_.Write("crash.sh", "#!/bin/sh\necho crashing >&2\nexit 7\n");
  fs::permissions(crash, fs::perms::owner_all);
  fs::remove(folder_.path() + "/bin/sae-trainer");
  fs::create_symlink(crash, folder_.path() + "/bin/sae-trainer");
  cluster_.KillProcess("trainer-0");
  cluster_.WaitForProcessLog("supervisor", "gave up on trainer-0", 30);
  trainer = cluster_.Process("trainer-0");
  EXPECT_TRUE(trainer.value("given_up", false)) << trainer.dump();
  EXPECT_EQ(trainer.value("last_exit", ""), "exited 7") << trainer.dump();
  EXPECT_EQ(trainer.value("restarts", 0), 2) << trainer.dump();
  const std::string message = cluster_.Supervisor().value("message", "");
  EXPECT_TRUE(absl::StrContains(message, "gave up on trainer-0: it exited 3 times within"))
      << message;
  status = Saectl("cluster status --data-dir " + DataDir());
  EXPECT_TRUE(absl::StrContains(status.out, "given up (crash loop)")) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, "gave up on trainer-0")) << status.out;
  // The supervisor keeps the others going.
  EXPECT_FALSE(Cmdline(cluster_.Process("controller").value("pid", -1)).empty());

  // Fixed, `cluster up` starts it again and supervises anew.
  fs::remove(folder_.path() + "/bin/sae-trainer");
  fs::create_symlink(support::TestBinaryPath("sae_fake_worker"),
                     folder_.path() + "/bin/sae-trainer");
  Result again = cluster_.UpAgain();
  EXPECT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.out, "restarted trainer-0")) << again.out;
  trainer = cluster_.Process("trainer-0");
  EXPECT_FALSE(trainer.value("given_up", true)) << trainer.dump();
  EXPECT_FALSE(Cmdline(trainer.value("pid", -1)).empty()) << trainer.dump();
  EXPECT_TRUE(cluster_.Supervisor().value("message", "x").empty());
}

}  // namespace
}  // namespace sae
