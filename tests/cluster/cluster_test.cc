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

#include <regex>

#include "tests/cluster/cluster_fixture.h"

namespace sae {
namespace {

using cluster_testing::ClusterTest;
using cluster_testing::Result;
using cluster_testing::SharedFiles;
namespace fs = std::filesystem;

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

// The last match of `pattern`'s first group in `text`, as a number; -1 when none.
int64_t LastNumber(const std::string& text, const std::regex& pattern) {
  int64_t last = -1;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), pattern);
       it != std::sregex_iterator(); ++it) {
    last = std::stoll((*it)[1].str());
  }
  return last;
}

TEST_F(ClusterTest, TrainerKilledMidRunIsRestartedByTheSupervisorAndTheRunSucceeds) {
  StartCluster(1, 2);
  constexpr int64_t kSteps = 1000;
  const std::string run_id =
      Submit(WriteRunYaml(1, 2, kSteps, {{"n_checkpoints", "4"}, {"max_restarts", "2"}}));
  WaitForState(run_id, "RUN_STATE_RUNNING");
  // Rank 0 goes: the next group's rank 0 hosts its store on the same port again. It goes
  // after the checkpoint at step 250 and between two checkpoints, so that the rollback skips
  // something. A kill that lands just after a checkpoint's upload skips nothing (rightly), so
  // rank 0 is frozen first and killed only once its log shows a step past its last checkpoint
  // (one it may still be uploading: the kill drops that upload, and the run resumes from it or
  // an earlier one, behind the logged step either way).
  const std::string rank0 = ProcessOf(run_id, "WORKER_ROLE_TRAINER", 0);
  WaitForProcessLog(rank0, "checkpoint at step 250:");
  WaitForProcessLog(rank0, "step 300/1000");
  const std::regex step_line(R"(step (\d+)/1000 tokens)");
  const std::regex checkpoint_line(R"(checkpoint at step (\d+):)");
  int64_t logged = -1;
  int64_t checkpointed = -1;
  for (int attempt = 0; attempt < 20; ++attempt) {
    FreezeProcess(rank0);
    const std::string log = ProcessLog(rank0);
    logged = LastNumber(log, step_line);
    checkpointed = LastNumber(log, checkpoint_line);
    if (logged > checkpointed) break;
    ThawProcess(rank0);
    WaitForProcessLog(rank0, absl::StrCat("step ", logged + 5, "/1000"));
  }
  ASSERT_GT(logged, checkpointed) << "rank 0 was never frozen between two checkpoints";
  KillProcess(rank0);
  ExpectRestartedBySupervisor(rank0);
  ExpectSucceeds(run_id, kSteps * 256);

  nlohmann::json run = GetRun(run_id);
  EXPECT_GE(Int(run, "generation"), 1) << run.dump(2);
  // Rank 0 trained at least to its logged step; the run went back to step `checkpointed` or
  // before.
  EXPECT_GE(Int(run, "tokens_skipped"), (logged - checkpointed) * 256)
      << "killed after step " << logged << ", last checkpoint " << checkpointed << "\n"
      << run.dump(2);
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

}  // namespace
}  // namespace sae
