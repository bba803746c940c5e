// The controller over gRPC on a loopback port, with fake workers that follow the real protocol
// (tests/support/fake_worker.h).
#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "core/metrics/text_format.h"
#include "gtest/gtest.h"
#include "services/common/controller_client.h"
#include "services/controller/controller_server.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"
#include "support/test_certificates.h"

namespace sae::controller {
namespace {

using support::TempDir;
using support::FakeWorker;
using support::FakeWorkerOptions;
using support::TestRunYaml;

constexpr v1::WorkerRole kServer = v1::WORKER_ROLE_ACTIVATION_SERVER;
constexpr v1::WorkerRole kTrainer = v1::WORKER_ROLE_TRAINER;

class ControllerServiceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    workers_.clear();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  void StartController(absl::Duration lease = absl::Seconds(3), std::string token = "",
                       std::string listen = "127.0.0.1:0") {
    ControllerServerOptions options;
    options.listen = listen;
    options.data_dir = folder_.path() + "/db";
    options.security.auth_token = token;
    options.controller.lease = lease;
    options.controller.checkpoint_retention = 2;
    options.tick = absl::Milliseconds(20);
    auto server = ControllerServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = Connect(token);
  }

  std::unique_ptr<client::ControllerClient> Connect(const std::string& token) {
    client::ControllerClientOptions options;
    options.address = server_->address();
    options.security.auth_token = token;
    options.timeout = absl::Seconds(10);
    auto client = client::ControllerClient::Connect(options);
    EXPECT_TRUE(client.ok());
    return std::move(*client);
  }

  FakeWorker* AddWorker(v1::WorkerRole role, std::string token = "") {
    FakeWorkerOptions options;
    options.controller = server_->address();
    options.role = role;
    options.auth_token = std::move(token);
    workers_.push_back(FakeWorker::Start(options));
    return workers_.back().get();
  }

  FakeWorker* WorkerWithId(const std::string& id) {
    for (auto& worker : workers_) {
      if (worker != nullptr && worker->id() == id) return worker.get();
    }
    return nullptr;
  }

  std::string Submit(const std::string& yaml, const std::string& name = "test") {
    v1::SubmitRunRequest request;
    request.set_config_yaml(yaml);
    request.set_name(name);
    auto run = client_->SubmitRun(request);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? run->run_id() : "";
  }

  // Polls the run until `done` holds; fails the test after `timeout`.
  v1::Run WaitFor(const std::string& run_id, const std::function<bool(const v1::Run&)>& done,
                  absl::Duration timeout = absl::Seconds(30)) {
    absl::Time give_up = absl::Now() + timeout;
    v1::Run run;
    while (absl::Now() < give_up) {
      auto got = client_->GetRun(run_id);
      if (got.ok()) {
        run = *got;
        if (done(run)) return run;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "timed out waiting on run " << run_id << ": " << run.DebugString();
    return run;
  }

  v1::Run WaitForState(const std::string& run_id, v1::RunState state,
                       absl::Duration timeout = absl::Seconds(30)) {
    return WaitFor(
        run_id, [state](const v1::Run& run) { return run.state() == state; }, timeout);
  }

  std::vector<v1::RunEvent> Events(const std::string& run_id, uint64_t after = 0) {
    std::vector<v1::RunEvent> events;
    absl::Status status =
        client_->WatchRun(run_id, after, /*follow=*/false, [&](const v1::RunEvent& event) {
          events.push_back(event);
          return true;
        });
    EXPECT_TRUE(status.ok()) << status;
    return events;
  }

  static bool HasEvent(const std::vector<v1::RunEvent>& events, v1::RunEvent::Type type,
                       const std::string& text = "") {
    return std::any_of(events.begin(), events.end(), [&](const v1::RunEvent& event) {
      return event.type() == type && event.message().find(text) != std::string::npos;
    });
  }

  TempDir folder_;
  std::unique_ptr<ControllerServer> server_;
  std::unique_ptr<client::ControllerClient> client_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(ControllerServiceTest, SecondRunWaitsPendingThenRunsWhenTheFirstEnds) {
  StartController();
  AddWorker(kServer);
  AddWorker(kTrainer);
  std::string first = Submit(TestRunYaml(1, 1, 30), "first");
  std::string second = Submit(TestRunYaml(1, 1, 30), "second");

  v1::Run running = WaitForState(first, v1::RUN_STATE_RUNNING);
  auto waiting = client_->GetRun(second);
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->state(), v1::RUN_STATE_PENDING);
  EXPECT_NE(waiting->message().find("waiting"), std::string::npos) << waiting->message();

  v1::Run done = WaitForState(first, v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.final_checkpoint_step(), 30);
  EXPECT_EQ(done.tokens(), 30 * 64);
  v1::Run later = WaitForState(second, v1::RUN_STATE_SUCCEEDED);
  EXPECT_GE(later.start_time_unix_ms(), done.end_time_unix_ms());
  EXPECT_EQ(later.generation(), 0u);

  auto checkpoints = client_->ListCheckpoints(first);
  ASSERT_TRUE(checkpoints.ok());
  ASSERT_EQ(checkpoints->size(), 2u);  // retention 2
  EXPECT_TRUE(checkpoints->back().final());
  EXPECT_EQ(checkpoints->back().step(), 30);
}

TEST_F(ControllerServiceTest, LostWorkerRestartsTheRunFromItsLastCheckpointWithANewGeneration) {
  // Long enough that the remaining workers' heartbeats arrive in time under ThreadSanitizer too
  // (with 600 ms a second worker was declared lost there, and the run restarted twice).
  StartController(absl::Seconds(2));
  AddWorker(kServer);
  AddWorker(kTrainer);
  AddWorker(kTrainer);
  std::string run_id = Submit(TestRunYaml(1, 2, 200));
  v1::Run run = WaitFor(run_id, [](const v1::Run& r) {
    return r.state() == v1::RUN_STATE_RUNNING && r.has_latest_checkpoint_step();
  });
  // A spare trainer takes the lost one's place.
  AddWorker(kTrainer);
  std::string lost_id;
  for (const v1::RunWorker& member : run.workers()) {
    if (member.role() == kTrainer && member.rank() == 1) lost_id = member.worker_id();
  }
  FakeWorker* lost = WorkerWithId(lost_id);
  ASSERT_NE(lost, nullptr);
  lost->Vanish();

  v1::Run restarted = WaitFor(run_id, [](const v1::Run& r) {
    return r.generation() == 1 && r.state() == v1::RUN_STATE_RUNNING;
  });
  EXPECT_TRUE(std::none_of(restarted.workers().begin(), restarted.workers().end(),
                           [&](const v1::RunWorker& w) { return w.worker_id() == lost_id; }));
  v1::Run done = WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(done.generation(), 1u);
  EXPECT_EQ(done.tokens(), 200 * 64);
  EXPECT_GT(done.tokens_skipped(), 0);

  std::vector<v1::RunEvent> events = Events(run_id);
  EXPECT_TRUE(HasEvent(events, v1::RunEvent::TYPE_WORKER_LOST, lost_id));
  EXPECT_TRUE(HasEvent(events, v1::RunEvent::TYPE_STATE_CHANGED, "RESTARTING"));
  EXPECT_TRUE(HasEvent(events, v1::RunEvent::TYPE_TOKENS_SKIPPED));
  EXPECT_TRUE(HasEvent(events, v1::RunEvent::TYPE_STATE_CHANGED, "resumes from the checkpoint"));
  // Rank 0 of generation 1 resumed from a checkpoint the controller had committed.
  FakeWorker* rank0 = nullptr;
  for (const v1::RunWorker& member : done.workers()) {
    if (member.role() == kTrainer && member.rank() == 0) rank0 = WorkerWithId(member.worker_id());
  }
  ASSERT_NE(rank0, nullptr);
  ASSERT_EQ(rank0->resumed_from().size(), 1u);
  EXPECT_GE(rank0->resumed_from()[0], run.latest_checkpoint_step());
  EXPECT_EQ(rank0->resumed_from()[0] % 4, 0);
}

TEST_F(ControllerServiceTest, RunFailsWithTheReasonOnceRestartsAreExhausted) {
  StartController(absl::Milliseconds(600));
  AddWorker(kServer);
  FakeWorker* trainer = AddWorker(kTrainer);
  std::string run_id = Submit(TestRunYaml(1, 1, 100000, /*max_restarts=*/0));
  WaitForState(run_id, v1::RUN_STATE_RUNNING);
  trainer->Vanish();
  v1::Run failed = WaitForState(run_id, v1::RUN_STATE_FAILED);
  EXPECT_NE(failed.message().find("no heartbeat"), std::string::npos) << failed.message();
  EXPECT_NE(failed.message().find("no restarts left (max_restarts 0)"), std::string::npos)
      << failed.message();
  EXPECT_EQ(failed.generation(), 0u);
}

TEST_F(ControllerServiceTest, StopRunEndsStoppedKeepingTheLastCheckpoint) {
  StartController();
  AddWorker(kServer);
  AddWorker(kTrainer);
  std::string run_id = Submit(TestRunYaml(1, 1, 100000));
  WaitFor(run_id, [](const v1::Run& r) { return r.step() >= 5; });
  auto asked = client_->StopRun(run_id);
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_TRUE(asked->stop_requested());
  v1::Run stopped = WaitForState(run_id, v1::RUN_STATE_STOPPED);
  ASSERT_TRUE(stopped.has_latest_checkpoint_step());
  EXPECT_NE(stopped.message().find(
                absl::StrCat("checkpoint at step ", stopped.latest_checkpoint_step(), " is kept")),
            std::string::npos)
      << stopped.message();
  auto checkpoints = client_->ListCheckpoints(run_id);
  ASSERT_TRUE(checkpoints.ok());
  EXPECT_EQ(checkpoints->back().step(), stopped.latest_checkpoint_step());
  EXPECT_TRUE(HasEvent(Events(run_id), v1::RunEvent::TYPE_STOP_REQUESTED));
}

TEST_F(ControllerServiceTest, StopOfAQueuedRunStopsItAtOnce) {
  StartController();
  std::string run_id = Submit(TestRunYaml(1, 1, 10));
  auto stopped = client_->StopRun(run_id);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state(), v1::RUN_STATE_STOPPED);
  EXPECT_NE(stopped->message().find("while PENDING"), std::string::npos) << stopped->message();
}

TEST_F(ControllerServiceTest, WatchRunResumesFromASequenceWithoutGapsOrRepeats) {
  StartController();
  std::string run_id = Submit(TestRunYaml(1, 1, 40));
  // Follow from the start while the run is still waiting for workers.
  std::vector<v1::RunEvent> followed;
  std::thread follower([&] {
    absl::Status status = client_->WatchRun(
        run_id, 0, /*follow=*/true,
        [&](const v1::RunEvent& event) {
          followed.push_back(event);
          return true;
        },
        absl::Now() + absl::Seconds(30));
    EXPECT_TRUE(status.ok()) << status;
  });
  AddWorker(kServer);
  AddWorker(kTrainer);
  follower.join();  // ends by itself after the final state's event

  ASSERT_FALSE(followed.empty());
  for (size_t i = 0; i < followed.size(); ++i) EXPECT_EQ(followed[i].sequence(), i + 1);
  EXPECT_EQ(followed.back().type(), v1::RunEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(followed.back().state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_TRUE(HasEvent(followed, v1::RunEvent::TYPE_PROGRESS, "50% of the tokens"));
  EXPECT_TRUE(HasEvent(followed, v1::RunEvent::TYPE_CHECKPOINT_COMMITTED, "final SAE"));

  std::vector<v1::RunEvent> all = Events(run_id);
  ASSERT_EQ(all.size(), followed.size());
  std::vector<v1::RunEvent> tail = Events(run_id, 3);
  ASSERT_EQ(tail.size(), all.size() - 3);
  EXPECT_EQ(tail.front().sequence(), 4u);
  EXPECT_EQ(tail.front().message(), all[3].message());
  // A follow that starts after the last event of a finished run ends at once.
  std::vector<v1::RunEvent> none;
  EXPECT_TRUE(client_
                  ->WatchRun(run_id, all.back().sequence(), true,
                             [&](const v1::RunEvent& e) {
                               none.push_back(e);
                               return true;
                             })
                  .ok());
  EXPECT_TRUE(none.empty());
}

TEST_F(ControllerServiceTest, RestartedControllerRecoversRunsAndTheGangCarriesOn) {
  // A lease long enough for the workers to reconnect on a loaded machine.
  StartController(absl::Seconds(6));
  AddWorker(kServer);
  AddWorker(kTrainer);
  std::string finished = Submit(TestRunYaml(1, 1, 8), "finished");
  WaitForState(finished, v1::RUN_STATE_SUCCEEDED);
  std::string run_id = Submit(TestRunYaml(1, 1, 400), "long");
  v1::Run before = WaitFor(run_id, [](const v1::Run& r) { return r.step() >= 10; });
  size_t finished_events = Events(finished).size();

  std::string address = server_->address();
  server_->Shutdown(absl::Milliseconds(200));
  server_.reset();
  // The workers' calls fail meanwhile.
  for (auto& worker : workers_) {
    EXPECT_FALSE(worker->agent().HeartbeatNow().ok()) << "the controller is down";
  }
  StartController(absl::Seconds(6), "", address);

  auto recovered = client_->GetRun(finished);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->state(), v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(Events(finished).size(), finished_events);
  v1::Run after = WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(after.generation(), 0u) << "the gang should carry on without a restart";
  EXPECT_EQ(after.tokens(), 400 * 64);
  EXPECT_EQ(after.workers(0).worker_id(), before.workers(0).worker_id());
}

TEST_F(ControllerServiceTest, CallsWithoutTheRightTokenAreRefused) {
  StartController(absl::Seconds(3), "s3cret");
  auto anonymous = Connect("");
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous->ListRuns().status()));
  auto wrong = Connect("guess");
  absl::Status refused = wrong->ListRuns().status();
  EXPECT_TRUE(absl::IsUnauthenticated(refused)) << refused;
  EXPECT_NE(refused.message().find("token"), absl::string_view::npos);
  EXPECT_TRUE(client_->ListRuns().ok());
  // Workers need it too; health checks do not.
  v1::RegisterWorkerRequest request;
  request.set_role(kTrainer);
  request.set_address("127.0.0.1:1");
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous->RegisterWorker(request).status()));
  auto channel = rpc::CreateChannel(server_->address(), rpc::ClientSecurity{});
  EXPECT_TRUE(rpc::CheckHealth(*channel, "", absl::Seconds(5)).ok());
}

TEST_F(ControllerServiceTest, ServesTlsWithACertificateFromATestCaAndStillNeedsTheToken) {
  absl::StatusOr<support::TestCertificates> certificates =
      support::MakeTestCertificates(folder_.path());
  ASSERT_TRUE(certificates.ok()) << certificates.status();
  ControllerServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = folder_.path() + "/db";
  options.security.auth_token = "s3cret";
  options.security.tls_cert_file = certificates->server_cert;
  options.security.tls_key_file = certificates->server_key;
  auto server = ControllerServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);

  auto connect = [&](const std::string& ca, const std::string& token) {
    client::ControllerClientOptions secure;
    secure.address = server_->address();
    secure.security.tls_ca_file = ca;
    secure.security.auth_token = token;
    secure.timeout = absl::Seconds(10);
    return std::move(*client::ControllerClient::Connect(secure));
  };
  EXPECT_TRUE(connect(certificates->ca, "s3cret")->ListRuns().ok());
  absl::Status wrong_token = connect(certificates->ca, "guess")->ListRuns().status();
  EXPECT_TRUE(absl::IsUnauthenticated(wrong_token)) << wrong_token;
  absl::Status other_ca = connect(certificates->other_ca, "s3cret")->ListRuns().status();
  EXPECT_TRUE(absl::IsUnavailable(other_ca)) << "a client that trusts another CA: " << other_ca;
  EXPECT_FALSE(connect("", "s3cret")->ListRuns().ok()) << "a plaintext client, a TLS port";
}

TEST_F(ControllerServiceTest, RefusedCallsAreLoggedRateLimitedAndWithoutAnyToken) {
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  spdlog::default_logger()->sinks().push_back(sink);
  StartController(absl::Seconds(3), "the-real-token-1234");
  auto wrong = Connect("a-guessed-token-5678");
  auto anonymous = Connect("");
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(absl::IsUnauthenticated(wrong->ListRuns().status()));
    EXPECT_TRUE(absl::IsUnauthenticated(anonymous->ListRuns().status()));
  }
  spdlog::default_logger()->flush();
  spdlog::default_logger()->sinks().pop_back();
  const std::string log = captured.str();
  int lines = 0;
  for (size_t at = log.find("refused a call from"); at != std::string::npos;
       at = log.find("refused a call from", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 1) << log;
  EXPECT_LT(lines, 2 * kCalls) << "one line per interval, not one per call\n" << log;
  EXPECT_TRUE(absl::StrContains(log, "bearer token")) << log;
  EXPECT_FALSE(absl::StrContains(log, "the-real-token-1234")) << log;
  EXPECT_FALSE(absl::StrContains(log, "a-guessed-token-5678")) << log;
}

TEST_F(ControllerServiceTest, BadConfigIsRefusedNamingTheKeyAndLine) {
  StartController();
  v1::SubmitRunRequest request;
  request.set_config_yaml(TestRunYaml(1, 1, 10) + "lr: fast\n");
  absl::Status status = client_->SubmitRun(request).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("run.yaml:"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("lr"), absl::string_view::npos) << status;
  EXPECT_TRUE(client_->ListRuns()->empty());
}

// A run of many SAEs (sweep:, hook_points:) is queued with its SAEs listed in the run's order;
// a sweep of a key the SAEs share is refused naming it (docs/config.md).
TEST_F(ControllerServiceTest, DeleteRunRemovesAFinishedRunButRefusesAnActiveOne) {
  StartController();
  std::string queued = Submit(TestRunYaml(1, 1, 10));
  EXPECT_TRUE(absl::IsFailedPrecondition(client_->DeleteRun(queued)));
  AddWorker(kServer);
  AddWorker(kTrainer);
  WaitForState(queued, v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(client_->DeleteRun(queued).ok());
  EXPECT_TRUE(absl::IsNotFound(client_->GetRun(queued).status()));
  EXPECT_TRUE(absl::IsNotFound(client_->ListCheckpoints(queued).status()));
  EXPECT_TRUE(absl::IsNotFound(client_->DeleteRun(queued)));
}

TEST_F(ControllerServiceTest, MetricsCountRunsAndWorkersAndMirrorTrainingMetrics) {
  StartController();
  AddWorker(kServer);
  AddWorker(kTrainer);
  AddWorker(kTrainer);
  std::string run_id = Submit(TestRunYaml(1, 1, 100000));
  WaitFor(run_id, [](const v1::Run& r) { return r.has_latest_checkpoint_step(); });
  std::string text = metrics::FormatText(server_->registry().Collect());
  EXPECT_NE(text.find("sae_controller_runs{state=\"running\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("sae_controller_workers{role=\"trainer\",state=\"assigned\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("sae_controller_workers{role=\"trainer\",state=\"idle\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("sae_controller_run_l0{run_id=\"" + run_id + "\"}"), std::string::npos);
  EXPECT_NE(text.find("sae_controller_checkpoint_upload_duration_seconds_count "),
            std::string::npos);
  EXPECT_NE(text.find("sae_controller_checkpoint_bytes_total{run_id=\"" + run_id + "\"}"),
            std::string::npos);
  ASSERT_TRUE(client_->StopRun(run_id).ok());
  WaitForState(run_id, v1::RUN_STATE_STOPPED);
  text = metrics::FormatText(server_->registry().Collect());
  EXPECT_EQ(text.find("sae_controller_run_l0{run_id=\"" + run_id + "\"}"), std::string::npos)
      << "a finished run's training series are dropped";
}

// ControllerServerOptions.metrics_security reaches the metrics port: /metrics needs the token,
// /healthz stays open, and the console keeps its own check of the gRPC token.
TEST_F(ControllerServiceTest, MetricsPortRequiresTheTokenWhenAskedAndKeepsHealthzOpen) {
  ControllerServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = folder_.path() + "/db";
  options.metrics_port = 0;
  options.metrics_bind_address = "127.0.0.1";
  options.security.auth_token = "grpc-and-console-token";
  options.metrics_security.auth_token = "grpc-and-console-token";
  auto server = ControllerServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client http("127.0.0.1", (*server)->metrics_port());
  httplib::Result anonymous = http.Get("/metrics");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  httplib::Result scraped =
      http.Get("/metrics", {{"Authorization", "Bearer grpc-and-console-token"}});
  ASSERT_TRUE(scraped);
  EXPECT_EQ(scraped->status, 200);
  EXPECT_NE(scraped->body.find("sae_controller_runs"), std::string::npos);
  httplib::Result probe = http.Get("/healthz");
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->status, 200);
  httplib::Result api = http.Get("/api/runs");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 401);
  (*server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace sae::controller
