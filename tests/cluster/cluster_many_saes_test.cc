// Runs of many SAEs on the cluster (run.yaml sweep: / hook_points:): equal to `saectl train`,
// resumed after a trainer is killed, and refused at submit when the trainers cannot hold them.
// The fixture and its bounds are those of cluster_test.cc (cluster_fixture.h).
#include "tests/cluster/cluster_fixture.h"

namespace sae {
namespace {

using cluster_testing::ClusterTest;
using cluster_testing::Result;
using cluster_testing::SharedFiles;
namespace fs = std::filesystem;

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
    // Each SAE's newest evaluation is kept beside the run's (the last SAE evaluated).
    ASSERT_TRUE(sae.contains("latest_eval")) << run.dump(2);
    EXPECT_EQ(Int(sae["latest_eval"], "step"), kSteps) << run.dump(2);
    EXPECT_EQ(sae["latest_eval"].value("sae", ""), names[i]) << run.dump(2);
    EXPECT_TRUE(sae["latest_eval"].value("final", false)) << run.dump(2);
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
  EXPECT_TRUE(absl::StrContains(described.out, "eval at step 40: CE-loss score ")) << described.out;
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
