// The worker agent against a real controller, in-process on a loopback port.
#include "services/common/worker_agent.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <string>

#include "core/util/files.h"
#include "gtest/gtest.h"
#include "services/controller/controller_server.h"
#include "support/child_process.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::client {
namespace {

using controller::ControllerServer;
using controller::ControllerServerOptions;
using support::TestRunYaml;
using support::TempDir;

class WorkerAgentTest : public ::testing::Test {
 protected:
  void TearDown() override {
    agents_.clear();
    if (server_ != nullptr) server_->Shutdown(absl::Milliseconds(500));
  }

  void StartController(const std::string& data_dir, const std::string& listen = "127.0.0.1:0",
                       absl::Duration lease = absl::Seconds(3)) {
    ControllerServerOptions options;
    options.listen = listen;
    options.data_dir = data_dir;
    options.controller.lease = lease;
    options.tick = absl::Milliseconds(20);
    auto server = ControllerServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  WorkerAgent* StartAgent(v1::WorkerRole role,
                          absl::Duration rpc_timeout = absl::Seconds(10)) {
    WorkerAgentOptions options;
    options.rpc_timeout = rpc_timeout;
    options.controller = server_->address();
    options.role = role;
    options.address = absl::StrCat("127.0.0.1:", 30000 + agents_.size());
    auto agent = WorkerAgent::Start(options);
    EXPECT_TRUE(agent.ok()) << agent.status();
    agents_.push_back(std::move(*agent));
    return agents_.back().get();
  }

  std::string Submit(const std::string& yaml) {
    v1::SubmitRunRequest request;
    request.set_config_yaml(yaml);
    auto run = server_->controller().SubmitRun(request);
    EXPECT_TRUE(run.ok()) << run.status();
    return run->run_id();
  }

  // Waits (up to 10 s) for a state that satisfies `done`.
  static AssignmentState WaitUntil(WorkerAgent& agent,
                                   const std::function<bool(const AssignmentState&)>& done) {
    absl::Time give_up = absl::Now() + absl::Seconds(10);
    AssignmentState state = agent.Current();
    while (!done(state) && absl::Now() < give_up) {
      state = agent.WaitForChange(state.version, absl::Milliseconds(100));
    }
    EXPECT_TRUE(done(state)) << "version " << state.version;
    return state;
  }

  TempDir folder_;
  std::unique_ptr<ControllerServer> server_;
  std::vector<std::unique_ptr<WorkerAgent>> agents_;
};

TEST_F(WorkerAgentTest, RegistersAndLearnsItsAssignmentFromHeartbeats) {
  StartController(folder_.path() + "/db");
  WorkerAgent* server = StartAgent(v1::WORKER_ROLE_ACTIVATION_SERVER);
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER);
  EXPECT_EQ(trainer->worker_id().rfind("trainer-", 0), 0u) << trainer->worker_id();
  EXPECT_GT(trainer->Current().version, 0u);
  EXPECT_FALSE(trainer->Current().assignment.has_value());
  std::atomic<int> callbacks{0};
  trainer->SetChangeCallback([&](const AssignmentState&) { ++callbacks; });

  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  AssignmentState state =
      WaitUntil(*trainer, [](const AssignmentState& s) { return s.assignment.has_value(); });
  EXPECT_EQ(state.assignment->run_id(), run_id);
  EXPECT_EQ(state.assignment->generation(), 0u);
  EXPECT_EQ(state.assignment->rendezvous_address(), "127.0.0.1:30001");
  EXPECT_EQ(state.assignment->activation_server_addresses(0), "127.0.0.1:30000");
  EXPECT_GE(callbacks.load(), 1);
  EXPECT_EQ(WaitUntil(*server, [](const AssignmentState& s) { return s.assignment.has_value(); })
                .assignment->shard_count(),
            1);
}

TEST_F(WorkerAgentTest, NotifiesANewGenerationAndAStopRequest) {
  StartController(folder_.path() + "/db");
  StartAgent(v1::WORKER_ROLE_ACTIVATION_SERVER);
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER);
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  AssignmentState first =
      WaitUntil(*trainer, [](const AssignmentState& s) { return s.assignment.has_value(); });

  v1::ReportProgressRequest failure;
  failure.set_outcome(v1::ReportProgressRequest::OUTCOME_FAILED);
  failure.set_error("lost its NCCL communicator");
  ASSERT_TRUE(trainer->ReportProgress(failure).ok());
  AssignmentState second = WaitUntil(*trainer, [](const AssignmentState& s) {
    return s.assignment.has_value() && s.assignment->generation() == 1;
  });
  EXPECT_GT(second.version, first.version);
  EXPECT_FALSE(second.stop_requested);

  v1::StopRunRequest stop;
  stop.set_run_id(run_id);
  ASSERT_TRUE(server_->controller().StopRun(stop).ok());
  AssignmentState stopping =
      WaitUntil(*trainer, [](const AssignmentState& s) { return s.stop_requested; });
  EXPECT_EQ(stopping.assignment->generation(), 1u);
}

TEST_F(WorkerAgentTest, KeepsItsAssignmentWhileTheControllerIsDown) {
  StartController(folder_.path() + "/db");
  StartAgent(v1::WORKER_ROLE_ACTIVATION_SERVER);
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER);
  Submit(TestRunYaml(1, 1, 100));
  AssignmentState assigned =
      WaitUntil(*trainer, [](const AssignmentState& s) { return s.assignment.has_value(); });
  server_->Shutdown(absl::Milliseconds(100));
  // Several heartbeats fail (the heartbeat thread's own go the same way).
  for (int i = 0; i < 3; ++i) {
    absl::Status heartbeat = trainer->HeartbeatNow();
    EXPECT_FALSE(heartbeat.ok()) << "the controller is down";
  }
  AssignmentState during = trainer->Current();
  EXPECT_EQ(during.version, assigned.version);
  EXPECT_TRUE(during.assignment.has_value());
}

TEST_F(WorkerAgentTest, RegistersAgainUnderANewIdWhenTheControllerForgetsIt) {
  StartController(folder_.path() + "/first");
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER);
  std::string old_id = trainer->worker_id();
  std::string address = server_->address();
  server_->Shutdown(absl::Milliseconds(100));
  server_.reset();
  // A controller with empty storage on the same address knows nobody.
  StartController(folder_.path() + "/second", address);
  absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (trainer->worker_id() == old_id && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_NE(trainer->worker_id(), old_id);
  EXPECT_EQ(server_->controller().ListWorkers().size(), 1u);
}

TEST_F(WorkerAgentTest, UploadedCheckpointDownloadsIntoAnIdenticalDirectory) {
  StartController(folder_.path() + "/db");
  StartAgent(v1::WORKER_ROLE_ACTIVATION_SERVER);
  // The calls' deadline is only a failure bound: generous, because under ThreadSanitizer copying
  // the 2.5 MB through gRPC takes about 15 s (scripts/sanitize.sh tsan).
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER, absl::Seconds(120));
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  WaitUntil(*trainer, [](const AssignmentState& s) { return s.assignment.has_value(); });

  TempDir source, target;
  std::string weights(2'500'000, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>(i * 7919 >> 3);
  source.Write("state.safetensors", weights);
  source.Write("state.json", R"({"step": 40})");
  source.Write("sae/cfg.json", R"({"d_in": 64})");
  auto uploaded = trainer->UploadCheckpoint(source.path(), 40, 2560, /*final=*/false);
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  EXPECT_EQ(uploaded->chunk_count(), 3);  // 2.5 MB in 1 MiB chunks
  EXPECT_EQ(uploaded->step(), 40);
  EXPECT_EQ(uploaded->tokens(), 2560);

  auto downloaded = trainer->DownloadCheckpoint(run_id, 40, target.path());
  ASSERT_TRUE(downloaded.ok()) << downloaded.status();
  EXPECT_EQ(downloaded->sha256(), uploaded->sha256());
  for (const char* name : {"state.safetensors", "state.json", "sae/cfg.json"}) {
    EXPECT_EQ(*ReadFile(target.path() + "/" + name), *ReadFile(source.path() + "/" + name)) << name;
  }
  EXPECT_TRUE(absl::IsNotFound(trainer->DownloadCheckpoint(run_id, 41, target.path()).status()));
}

TEST_F(WorkerAgentTest, StartRefusesAWorkerWithoutRoleOrAddress) {
  WorkerAgentOptions options;
  options.address = "127.0.0.1:1";
  EXPECT_TRUE(absl::IsInvalidArgument(WorkerAgent::Start(options).status()));
  options.role = v1::WORKER_ROLE_TRAINER;
  options.address = "";
  EXPECT_TRUE(absl::IsInvalidArgument(WorkerAgent::Start(options).status()));
}

TEST_F(WorkerAgentTest, StartGivesUpWhenNoControllerAnswers) {
  WorkerAgentOptions options;
  options.controller = "127.0.0.1:1";
  options.role = v1::WORKER_ROLE_TRAINER;
  options.address = "127.0.0.1:2";
  options.rpc_timeout = absl::Milliseconds(200);
  options.register_timeout = absl::Milliseconds(800);
  absl::Time started = absl::Now();
  absl::Status status = WorkerAgent::Start(options).status();
  EXPECT_TRUE(absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) << status;
  EXPECT_LT(absl::Now() - started, absl::Seconds(5));
}

// The liveness check behind a worker's /healthz: a stuck heartbeat loop is unhealthy, a
// controller that does not answer is not (restarting every worker would not bring it back).
TEST_F(WorkerAgentTest, IsUnhealthyWhileItsHeartbeatLoopIsStuckAndNotWhenTheControllerIsAway) {
  StartController(folder_.path() + "/db", "127.0.0.1:0", absl::Milliseconds(300));
  WorkerAgent* server = StartAgent(v1::WORKER_ROLE_ACTIVATION_SERVER, absl::Milliseconds(200));
  WorkerAgent* trainer = StartAgent(v1::WORKER_ROLE_TRAINER, absl::Milliseconds(200));
  EXPECT_TRUE(trainer->CheckHealth().ok());

  // The change callback runs on the heartbeat thread: blocking it stalls the loop.
  std::mutex mutex;
  std::condition_variable released_changed;
  bool released = false;
  std::atomic<bool> blocked{false};
  trainer->SetChangeCallback([&](const AssignmentState& state) {
    if (!state.assignment) return;
    blocked = true;
    std::unique_lock<std::mutex> lock(mutex);
    released_changed.wait(lock, [&] { return released; });
  });
  Submit(TestRunYaml(1, 1, 100));
  ASSERT_TRUE(support::Eventually([&] { return blocked.load(); }, std::chrono::seconds(10)));
  ASSERT_TRUE(support::Eventually([&] { return !trainer->CheckHealth().ok(); },
                                  std::chrono::seconds(10)));
  absl::Status stuck = trainer->CheckHealth();
  EXPECT_TRUE(absl::IsUnavailable(stuck)) << stuck;
  EXPECT_NE(stuck.message().find("heartbeat loop has not run"), std::string::npos) << stuck;
  EXPECT_TRUE(server->CheckHealth().ok()) << server->CheckHealth();
  {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
  }
  released_changed.notify_all();
  EXPECT_TRUE(support::Eventually([&] { return trainer->CheckHealth().ok(); },
                                  std::chrono::seconds(10)));

  // Without a controller, heartbeats fail (and are logged) but the loop turns: still healthy
  // for longer than the limit (3 x 200 ms + 5 intervals).
  server_->Shutdown(absl::Milliseconds(200));
  server_.reset();
  const absl::Time until = absl::Now() + absl::Seconds(3);
  int checks = 0;
  while (absl::Now() < until) {
    EXPECT_TRUE(server->CheckHealth().ok()) << server->CheckHealth();
    server->WaitForChange(server->Current().version, absl::Milliseconds(100));
    ++checks;
  }
  EXPECT_GT(checks, 5);
}

}  // namespace
}  // namespace sae::client
