// Controller's logic without gRPC, on a clock the tests move.
#include "services/controller/controller.h"

#include <memory>
#include <string>

#include "core/metrics/text_format.h"
#include "gtest/gtest.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;
using support::TestRunYaml;

constexpr v1::WorkerRole kServer = v1::WORKER_ROLE_ACTIVATION_SERVER;
constexpr v1::WorkerRole kTrainer = v1::WORKER_ROLE_TRAINER;

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open() {
    controller_.reset();
    auto store = RunStore::Open(folder_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ControllerOptions options;
    options.lease = absl::Seconds(10);
    options.stop_timeout = absl::Seconds(60);
    options.now = [this] { return now_; };
    auto controller = Controller::Open(std::move(*store), options, &registry_);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = std::move(*controller);
  }

  std::string Register(v1::WorkerRole role, const std::string& address) {
    v1::RegisterWorkerRequest request;
    request.set_role(role);
    request.set_address(address);
    auto response = controller_->RegisterWorker(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response->worker_id();
  }

  v1::HeartbeatResponse Beat(const std::string& worker_id) {
    v1::HeartbeatRequest request;
    request.set_worker_id(worker_id);
    auto response = controller_->Heartbeat(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::HeartbeatResponse();
  }

  std::string Submit(const std::string& yaml) {
    v1::SubmitRunRequest request;
    request.set_config_yaml(yaml);
    auto run = controller_->SubmitRun(request);
    EXPECT_TRUE(run.ok()) << run.status();
    return run->run_id();
  }

  v1::Run Get(const std::string& run_id) { return *controller_->GetRun(run_id); }

  // Commits a one-chunk checkpoint at `step` from `worker_id` (the final SAE when `final`).
  absl::Status Checkpoint(const std::string& worker_id, const v1::Run& run, int64_t step,
                          bool final = false) {
    v1::UploadHeader header;
    header.set_worker_id(worker_id);
    header.set_run_id(run.run_id());
    header.set_generation(run.generation());
    header.set_step(step);
    header.set_final(final);
    header.set_tokens(step * 64);
    auto upload = controller_->BeginUpload(header);
    if (!upload.ok()) return upload.status();
    v1::CheckpointChunk chunk;
    chunk.set_data("weights");
    if (absl::Status added = controller_->AddChunk(**upload, chunk); !added.ok()) return added;
    v1::UploadCommit commit;
    commit.set_chunk_count(1);
    commit.set_total_bytes(7);
    commit.set_sha256(rpc::Sha256::Of("weights"));
    return controller_->CommitUpload(**upload, commit).status();
  }

  TempDir folder_;
  metrics::Registry registry_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControllerTest, AssignmentsCarryEverythingTheWorkersNeed) {
  std::string s0 = Register(kServer, "10.0.0.1:7001");
  std::string s1 = Register(kServer, "10.0.0.2:7001");
  std::string t0 = Register(kTrainer, "10.0.0.3:29500");
  std::string t1 = Register(kTrainer, "10.0.0.4:29500");
  std::string run_id = Submit(TestRunYaml(2, 2, 100));
  EXPECT_EQ(Get(run_id).state(), v1::RUN_STATE_RUNNING);

  v1::Assignment server = Beat(s1).assignment();
  EXPECT_EQ(server.role(), kServer);
  EXPECT_EQ(server.shard_index(), 1);
  EXPECT_EQ(server.shard_count(), 2);
  EXPECT_EQ(server.world_size(), 2);
  EXPECT_EQ(server.generation(), 0u);
  EXPECT_NE(server.config_yaml().find("train_batch_size: 64"), std::string::npos);

  v1::Assignment trainer = Beat(t1).assignment();
  EXPECT_EQ(trainer.role(), kTrainer);
  EXPECT_EQ(trainer.rank(), 1);
  EXPECT_EQ(trainer.world_size(), 2);
  EXPECT_EQ(trainer.rendezvous_address(), "10.0.0.3:29500");
  EXPECT_EQ(std::vector<std::string>(trainer.activation_server_addresses().begin(),
                                     trainer.activation_server_addresses().end()),
            (std::vector<std::string>{"10.0.0.1:7001", "10.0.0.2:7001"}));
  EXPECT_FALSE(trainer.has_resume_checkpoint_step());
  EXPECT_TRUE(Beat(t0).has_assignment());
  EXPECT_TRUE(Beat(s0).has_assignment());
}

TEST_F(ControllerTest, EachGenerationsTrainersShareARendezvousKeyThatNothingElseShows) {
  std::string s0 = Register(kServer, "10.0.0.1:7001");
  std::string t0 = Register(kTrainer, "10.0.0.3:29500");
  std::string t1 = Register(kTrainer, "10.0.0.4:29500");
  std::string spare = Register(kTrainer, "10.0.0.5:29500");
  std::string run_id = Submit(TestRunYaml(1, 2, 100));
  v1::Run run = Get(run_id);
  ASSERT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  std::vector<std::string> trainers;
  for (const v1::RunWorker& member : run.workers()) {
    if (member.role() == kTrainer) trainers.push_back(member.worker_id());
  }
  ASSERT_EQ(trainers.size(), 2u);

  const v1::Assignment rank_a = Beat(trainers[0]).assignment();
  const v1::Assignment rank_b = Beat(trainers[1]).assignment();
  const std::string key = rank_a.rendezvous_key();
  EXPECT_EQ(key.size(), 64u) << "HMAC-SHA256 in hex";
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos) << key;
  EXPECT_EQ(rank_b.rendezvous_key(), key);
  EXPECT_EQ(Beat(s0).assignment().rendezvous_key(), "") << "activation servers need none";
  // Not in the run record (describe, get -o yaml, the console), nor in its events.
  EXPECT_EQ(run.DebugString().find(key), std::string::npos);
  auto events = controller_->ReadEvents(run_id, 0, 1000);
  ASSERT_TRUE(events.ok()) << events.status();
  for (const v1::RunEvent& event : *events) {
    EXPECT_EQ(event.DebugString().find(key), std::string::npos) << event.DebugString();
  }

  // A new generation gets a new key.
  v1::ReportProgressRequest failure;
  failure.set_worker_id(trainers[1]);
  failure.set_run_id(run_id);
  failure.set_outcome(v1::ReportProgressRequest::OUTCOME_FAILED);
  failure.set_error("killed");
  ASSERT_TRUE(controller_->ReportProgress(failure).ok());
  run = Get(run_id);
  ASSERT_EQ(run.generation(), 1u);
  ASSERT_EQ(run.state(), v1::RUN_STATE_RUNNING) << run.message();
  for (const v1::RunWorker& member : run.workers()) {
    if (member.role() != kTrainer) continue;
    const v1::Assignment next = Beat(member.worker_id()).assignment();
    EXPECT_EQ(next.generation(), 1u);
    EXPECT_EQ(next.rendezvous_key().size(), 64u);
    EXPECT_NE(next.rendezvous_key(), key);
  }
  (void)t0;
  (void)t1;
  (void)spare;
}

TEST_F(ControllerTest, TheSparsitySummaryOfTheLastWindowOutlivesLaterReports) {
  Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  auto report = [&](int64_t step, bool window_ended) {
    v1::ReportProgressRequest progress;
    progress.set_worker_id(t0);
    progress.set_run_id(run_id);
    progress.set_step(step);
    progress.set_tokens(step * 64);
    progress.mutable_metrics()->set_l0(10.0 + static_cast<double>(step));
    if (window_ended) {
      progress.mutable_metrics()->set_mean_log10_feature_sparsity(-2.5);
      progress.mutable_metrics()->set_features_below_1e5(7);
      progress.mutable_metrics()->set_features_below_1e6(3);
    }
    ASSERT_TRUE(controller_->ReportProgress(progress).ok());
  };
  report(5, false);
  EXPECT_FALSE(Get(run_id).metrics().has_mean_log10_feature_sparsity()) << "no window ended yet";
  report(10, true);
  report(15, false);
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.metrics().l0(), 25.0) << "the rest is the latest report's";
  ASSERT_TRUE(run.metrics().has_mean_log10_feature_sparsity());
  EXPECT_EQ(run.metrics().mean_log10_feature_sparsity(), -2.5);
  EXPECT_EQ(run.metrics().features_below_1e5(), 7);
  EXPECT_EQ(run.metrics().features_below_1e6(), 3);
}

TEST_F(ControllerTest, EvaluationsBecomeEventsTheLatestEvalAndGaugesAndAFailureIsOnlyAnEvent) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  auto report = [&](const std::string& worker, int64_t step, const std::string& error) {
    v1::ReportProgressRequest request;
    request.set_worker_id(worker);
    request.set_run_id(run_id);
    v1::EvalReport& eval = *request.mutable_eval();
    eval.set_step(step);
    eval.set_tokens(step * 64);
    eval.set_server("h:1");
    if (error.empty()) {
      eval.set_results_json(R"({"model_performance_preservation":{"ce_loss_score":0.9}})");
      eval.set_ce_loss_score(0.5 + 0.001 * static_cast<double>(step));
      eval.set_explained_variance(0.75);
    } else {
      eval.set_error(error);
    }
    return controller_->ReportProgress(request);
  };
  ASSERT_TRUE(report(t0, 20, "").ok());
  ASSERT_TRUE(report(t0, 40, "activation server h:1: connection reset").ok());
  EXPECT_EQ(report(s0, 40, "").status().code(), absl::StatusCode::kInvalidArgument)
      << "only trainer rank 0 evaluates";

  v1::Run run = Get(run_id);
  ASSERT_TRUE(run.has_latest_eval());
  EXPECT_EQ(run.latest_eval().step(), 20) << "a failed evaluation leaves the latest success";
  EXPECT_DOUBLE_EQ(run.latest_eval().ce_loss_score(), 0.52);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING) << "a failed evaluation fails nothing";
  EXPECT_EQ(run.step(), 0) << "an evaluation report is not training progress";
  auto events = controller_->ReadEvents(run_id, 0, 100);
  ASSERT_TRUE(events.ok());
  std::vector<const v1::RunEvent*> evals;
  for (const v1::RunEvent& e : *events) {
    if (e.type() == v1::RunEvent::TYPE_EVAL_COMPLETED || e.type() == v1::RunEvent::TYPE_EVAL_FAILED) {
      evals.push_back(&e);
    }
  }
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[0]->type(), v1::RunEvent::TYPE_EVAL_COMPLETED);
  EXPECT_EQ(evals[0]->step(), 20);
  EXPECT_NE(evals[0]->message().find("CE-loss score 0.52"), std::string::npos)
      << evals[0]->message();
  EXPECT_EQ(evals[1]->type(), v1::RunEvent::TYPE_EVAL_FAILED);
  EXPECT_NE(evals[1]->message().find("connection reset"), std::string::npos);
  const std::string text = metrics::FormatText(registry_.Collect());
  EXPECT_NE(text.find("sae_controller_run_eval_ce_loss_score{run_id=\"" + run_id + "\"} 0.52"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sae_controller_run_eval_explained_variance{run_id=\"" + run_id +
                      "\"} 0.75"),
            std::string::npos);

  Open();  // the latest evaluation survives a controller restart
  EXPECT_EQ(Get(run_id).latest_eval().step(), 20);
}

TEST_F(ControllerTest, AWorkerLostAfterTheFinalSaeWasCommittedEndsTheRunSucceeded) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  v1::Run run = Get(run_id);
  ASSERT_TRUE(Checkpoint(t0, run, 100).ok());
  ASSERT_TRUE(Checkpoint(t0, run, 100, /*final=*/true).ok());
  // Rank 0 dies before it reports FINISHED: restarting would resume from the final SAE, which
  // holds no trainer state, to train nothing.
  now_ += absl::Seconds(6);
  Beat(s0);
  now_ += absl::Seconds(5);
  controller_->Tick();
  run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED) << run.message();
  EXPECT_EQ(run.generation(), 0u);
  EXPECT_EQ(run.final_checkpoint_step(), 100);
  EXPECT_EQ(run.tokens(), 6400);
  EXPECT_NE(run.message().find("the final SAE is the checkpoint at step 100"), std::string::npos)
      << run.message();
  EXPECT_NE(run.message().find("trainer rank 0"), std::string::npos) << run.message();
}

TEST_F(ControllerTest, SilentWorkerIsLostAfterItsLeaseAndTheRunResumesFromItsCheckpoint) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  v1::Run run = Get(run_id);
  ASSERT_TRUE(Checkpoint(t0, run, 20).ok());
  v1::ReportProgressRequest cursor;
  cursor.set_worker_id(s0);
  cursor.set_run_id(run_id);
  cursor.set_shard_cursor("cursor-after-20");
  cursor.set_tokens_generated(5000);
  ASSERT_TRUE(controller_->ReportProgress(cursor).ok());

  now_ += absl::Seconds(6);
  Beat(s0);  // the server keeps its lease; the trainer stays silent
  now_ += absl::Seconds(5);
  controller_->Tick();
  run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RESTARTING);
  EXPECT_EQ(run.generation(), 1u);
  EXPECT_NE(run.message().find("trainer rank 0"), std::string::npos) << run.message();
  EXPECT_NE(run.message().find("no heartbeat for 10s"), std::string::npos) << run.message();
  EXPECT_NE(run.message().find("waiting for workers: 1 trainer needed, 0 idle"), std::string::npos)
      << run.message();
  EXPECT_TRUE(absl::IsNotFound(controller_
                                   ->Heartbeat([&] {
                                     v1::HeartbeatRequest request;
                                     request.set_worker_id(t0);
                                     return request;
                                   }())
                                   .status()));

  std::string replacement = Register(kTrainer, "h:3");
  run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);
  v1::Assignment trainer = Beat(replacement).assignment();
  EXPECT_EQ(trainer.generation(), 1u);
  EXPECT_EQ(trainer.resume_checkpoint_step(), 20);
  v1::Assignment server = Beat(s0).assignment();
  EXPECT_EQ(server.generation(), 1u);
  EXPECT_EQ(server.shard_cursor(), "cursor-after-20");
  EXPECT_EQ(run.tokens_generated(), 5000);
}

TEST_F(ControllerTest, ReportOfAnEarlierGenerationIsRefused) {
  Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string spare = Register(kTrainer, "h:3");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  v1::ReportProgressRequest failure;
  failure.set_worker_id(t0);
  failure.set_run_id(run_id);
  failure.set_outcome(v1::ReportProgressRequest::OUTCOME_FAILED);
  failure.set_error("CUDA out of memory");
  ASSERT_TRUE(controller_->ReportProgress(failure).ok());
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.generation(), 1u);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING);  // re-placed at once on the idle workers

  v1::ReportProgressRequest stale;
  stale.set_worker_id(t0);
  stale.set_run_id(run_id);
  stale.set_generation(0);
  stale.set_step(5);
  EXPECT_TRUE(absl::IsFailedPrecondition(controller_->ReportProgress(stale).status()));
  (void)spare;
}

TEST_F(ControllerTest, FatalWorkerErrorFailsTheRunAtOnce) {
  Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  v1::ReportProgressRequest failure;
  failure.set_worker_id(t0);
  failure.set_run_id(run_id);
  failure.set_outcome(v1::ReportProgressRequest::OUTCOME_FAILED);
  failure.set_error("dataset_path /data/corpus.txt does not exist");
  failure.set_fatal(true);
  ASSERT_TRUE(controller_->ReportProgress(failure).ok());
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_FAILED);
  EXPECT_NE(run.message().find("does not exist"), std::string::npos) << run.message();
}

TEST_F(ControllerTest, FinishingWithoutTheFinalCheckpointIsRefused) {
  Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 10));
  v1::ReportProgressRequest finished;
  finished.set_worker_id(t0);
  finished.set_run_id(run_id);
  finished.set_outcome(v1::ReportProgressRequest::OUTCOME_FINISHED);
  finished.set_checkpoint_step(10);
  EXPECT_TRUE(absl::IsFailedPrecondition(controller_->ReportProgress(finished).status()));
  ASSERT_TRUE(Checkpoint(t0, Get(run_id), 10).ok());
  ASSERT_TRUE(controller_->ReportProgress(finished).ok());
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run.final_checkpoint_step(), 10);
  // No progress report arrived (as when the controller was away): the final SAE tells where
  // training ended.
  EXPECT_EQ(run.step(), 10);
  EXPECT_EQ(run.tokens(), 10 * 64);
  EXPECT_FALSE(Beat(t0).has_assignment());
}

TEST_F(ControllerTest, StopEndsAfterTheTimeoutWhenRankZeroNeverConfirms) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  v1::StopRunRequest stop;
  stop.set_run_id(run_id);
  ASSERT_TRUE(controller_->StopRun(stop).ok());
  EXPECT_TRUE(Beat(t0).stop_requested());
  for (int i = 0; i < 7; ++i) {  // 70 s of heartbeats without a confirmation
    now_ += absl::Seconds(10);
    Beat(s0);
    Beat(t0);
    controller_->Tick();
  }
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_STOPPED);
  EXPECT_NE(run.message().find("did not confirm within 1m"), std::string::npos) << run.message();
}

TEST_F(ControllerTest, ReopenedControllerKeepsTheGangWhoseWorkersComeBack) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  std::string queued = Submit(TestRunYaml(1, 1, 100));
  Open();
  EXPECT_EQ(Get(run_id).state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(Get(queued).state(), v1::RUN_STATE_PENDING);
  EXPECT_EQ(Beat(t0).assignment().run_id(), run_id);
  now_ += absl::Seconds(8);
  Beat(s0);
  Beat(t0);
  now_ += absl::Seconds(8);
  controller_->Tick();
  EXPECT_EQ(Get(run_id).state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(Get(run_id).generation(), 0u);
}

TEST_F(ControllerTest, ReopenedControllerRestartsAGangThatNeverComesBack) {
  Register(kServer, "h:1");
  Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  Open();
  now_ += absl::Seconds(11);
  controller_->Tick();
  v1::Run run = Get(run_id);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RESTARTING);
  EXPECT_EQ(run.generation(), 1u);
}

TEST_F(ControllerTest, ValidateOnlySubmissionStoresNothing) {
  v1::SubmitRunRequest request;
  request.set_config_yaml(TestRunYaml(1, 2, 100));
  request.set_name("My Big Run!");
  request.set_validate_only(true);
  auto run = controller_->SubmitRun(request);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->name(), "my-big-run");
  EXPECT_EQ(run->trainers(), 2);
  EXPECT_EQ(run->total_steps(), 100);
  EXPECT_TRUE(controller_->ListRuns(v1::ListRunsRequest()).empty());
}

TEST_F(ControllerTest, ASweepIsQueuedListingItsSaes) {
  v1::SubmitRunRequest request;
  request.set_config_yaml(TestRunYaml(1, 1, 10) + "sweep:\n  l1_coefficient: [0.001, 0.002]\n");
  absl::StatusOr<v1::Run> run = controller_->SubmitRun(request);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->saes_size(), 2) << run->DebugString();
  EXPECT_EQ(run->saes(0).name(), "blocks.0.hook_resid_pre/l1=0.001");
  EXPECT_EQ(run->saes(1).name(), "blocks.0.hook_resid_pre/l1=0.002");
  EXPECT_EQ(Get(run->run_id()).saes_size(), 2);

  request.set_config_yaml(TestRunYaml(1, 1, 10) + "sweep:\n  context_size: [8, 16]\n");
  absl::Status refused = controller_->SubmitRun(request).status();
  EXPECT_TRUE(absl::IsInvalidArgument(refused)) << refused;
  EXPECT_NE(refused.message().find("context_size"), absl::string_view::npos) << refused;
  EXPECT_EQ(controller_->ListRuns(v1::ListRunsRequest()).size(), 1u);
}

}  // namespace
}  // namespace sae::controller
