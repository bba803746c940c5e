// Controller's logic without gRPC, on a clock the tests move.
#include "services/controller/controller.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "services/controller/controller_test_fixture.h"

namespace sae::controller {
namespace {

using controller_testing::ControllerTest;
using controller_testing::kServer;
using controller_testing::kTrainer;
using support::TestRunYaml;

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
