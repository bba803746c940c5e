// Test support: stand-ins for sae-activation-server and sae-trainer that follow the controller
// protocol through a real WorkerAgent but do no maths. Header-only: its users link
// sae_worker_agent, sae_config and sae_safetensors.
//
// A fake trainer of rank 0 counts steps of train_batch_size tokens, reports each step, uploads
// a checkpoint directory (state.json with the step, and sae/cfg.json) every few steps,
// resumes from the assignment's checkpoint after a restart (reporting the tokens it rolled
// back as skipped), honours stop requests, and at total_training_tokens uploads the final
// checkpoint and reports OUTCOME_FINISHED. A fake activation server reports a growing cursor.
#ifndef SAE_TESTS_SUPPORT_FAKE_WORKER_H_
#define SAE_TESTS_SUPPORT_FAKE_WORKER_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/io/safetensors.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "services/common/worker_agent.h"
#include "support/temp_dir.h"

namespace sae::support {

struct FakeWorkerOptions {
  std::string controller;
  std::string auth_token;
  v1::WorkerRole role = v1::WORKER_ROLE_TRAINER;
  // host:port it registers with; "" picks a distinct loopback address.
  std::string address;
  // Trainers: time one step takes; servers: time between reports.
  absl::Duration step_time = absl::Milliseconds(15);
  // Trainers of rank 0: a checkpoint every this many steps.
  int64_t checkpoint_every = 4;
  // Trainers: the SAEs of a run of many to report (ReportProgressRequest.saes); SAE i reports
  // L0 10 + step + 100 (i + 1).
  std::vector<std::string> saes;
};

class FakeWorker {
 public:
  // Starts the worker; it registers at once. Fails the test when it cannot.
  static std::unique_ptr<FakeWorker> Start(const FakeWorkerOptions& options) {
    static std::atomic<int> next_port{20000};
    client::WorkerAgentOptions agent_options;
    agent_options.controller = options.controller;
    agent_options.security.auth_token = options.auth_token;
    agent_options.role = options.role;
    agent_options.address = options.address.empty()
                                ? absl::StrCat("127.0.0.1:", next_port.fetch_add(1))
                                : options.address;
    agent_options.register_timeout = absl::Seconds(10);
    auto agent = client::WorkerAgent::Start(agent_options);
    EXPECT_TRUE(agent.ok()) << agent.status();
    if (!agent.ok()) return nullptr;
    std::unique_ptr<FakeWorker> worker(new FakeWorker(options, std::move(*agent)));
    worker->thread_ = std::thread([raw = worker.get()] { raw->Loop(); });
    return worker;
  }

  ~FakeWorker() { Vanish(); }

  // Stops working and heartbeating at once, like a process killed with SIGKILL.
  void Vanish() {
    quit_ = true;
    if (thread_.joinable()) thread_.join();
    agent_->Shutdown();
  }

  client::WorkerAgent& agent() { return *agent_; }
  std::string id() const { return agent_->worker_id(); }

  // Steps rank 0 resumed from after restarts, in order.
  std::vector<int64_t> resumed_from() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return resumed_from_;
  }

 private:
  FakeWorker(FakeWorkerOptions options, std::unique_ptr<client::WorkerAgent> agent)
      : options_(std::move(options)), agent_(std::move(agent)) {}

  void Loop() {
    uint64_t seen = 0;
    while (!quit_) {
      client::AssignmentState state = agent_->WaitForChange(seen, absl::Milliseconds(50));
      if (state.version == seen) continue;
      seen = state.version;
      if (!state.assignment) continue;
      if (state.assignment->role() == v1::WORKER_ROLE_TRAINER && state.assignment->rank() == 0) {
        RunTrainer(*state.assignment, seen);
      } else {
        RunFollower(*state.assignment, seen);
      }
    }
  }

  // True while the assignment that started the work is still the current one.
  bool Current(uint64_t version) { return !quit_ && agent_->Current().version == version; }

  void RunFollower(const v1::Assignment& assignment, uint64_t version) {
    int64_t reports = 0;
    while (Current(version)) {
      absl::SleepFor(options_.step_time);
      if (assignment.role() != v1::WORKER_ROLE_ACTIVATION_SERVER) continue;
      ++reports;
      v1::ReportProgressRequest report;
      report.set_shard_cursor(
          absl::StrCat(assignment.shard_cursor(), "|g", assignment.generation(), "n", reports));
      report.set_tokens_generated(reports * 100);
      (void)agent_->ReportProgress(report);
    }
  }

  void RunTrainer(const v1::Assignment& assignment, uint64_t version) {
    auto config = config::ParseRunConfig(assignment.config_yaml(), "assignment");
    ASSERT_TRUE(config.ok()) << config.status();
    const int64_t batch = config->train_batch_size;
    const int64_t total_steps = config::TotalTrainingSteps(*config);
    int64_t step = 0;
    if (assignment.has_resume_checkpoint_step()) {
      TempDir restored;
      auto manifest = agent_->DownloadCheckpoint(
          assignment.run_id(), assignment.resume_checkpoint_step(), restored.path());
      ASSERT_TRUE(manifest.ok()) << manifest.status();
      auto text = ReadFile(restored.path() + "/state.json");
      ASSERT_TRUE(text.ok()) << text.status();
      ASSERT_TRUE(absl::SimpleAtoi(*text, &step)) << *text;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        resumed_from_.push_back(step);
      }
      v1::ReportProgressRequest skipped;
      skipped.set_step(step);
      skipped.set_tokens(step * batch);
      skipped.set_tokens_skipped(batch);  // what a real trainer measures; a stand-in here
      (void)agent_->ReportProgress(skipped);
    }
    while (Current(version)) {
      absl::SleepFor(options_.step_time);
      if (!Current(version)) return;
      ++step;
      v1::ReportProgressRequest report;
      report.set_step(step);
      report.set_tokens(step * batch);
      report.mutable_metrics()->set_step(step);
      report.mutable_metrics()->set_tokens(step * batch);
      report.mutable_metrics()->set_l0(10.0 + step);
      report.mutable_metrics()->set_overall_loss(1.0 / static_cast<double>(step));
      report.mutable_metrics()->set_explained_variance(0.5);
      for (size_t i = 0; i < options_.saes.size(); ++i) {
        v1::SaeProgress* sae = report.add_saes();
        sae->set_name(options_.saes[i]);
        sae->set_step(step);
        *sae->mutable_metrics() = report.metrics();
        sae->mutable_metrics()->set_l0(10.0 + step + 100.0 * static_cast<double>(i + 1));
      }
      auto answer = agent_->ReportProgress(report);
      if (!answer.ok()) continue;
      bool stop = answer->stop_requested() || agent_->Current().stop_requested;
      bool done = step >= total_steps;
      if (stop || done || step % options_.checkpoint_every == 0) {
        if (!Upload(step, step * batch, done && !stop)) continue;
      }
      if (stop || done) {
        v1::ReportProgressRequest end;
        end.set_step(step);
        end.set_tokens(step * batch);
        end.set_checkpoint_step(step);
        end.set_outcome(stop ? v1::ReportProgressRequest::OUTCOME_STOPPED
                             : v1::ReportProgressRequest::OUTCOME_FINISHED);
        (void)agent_->ReportProgress(end);
        (void)agent_->HeartbeatNow();
        return;
      }
    }
  }

  bool Upload(int64_t step, int64_t tokens, bool final) {
    TempDir checkpoint;
    checkpoint.Write("state.json", absl::StrCat(step));
    WriteSaeLens(checkpoint, tokens);
    auto manifest = agent_->UploadCheckpoint(checkpoint.path(), step, tokens, final);
    return manifest.ok();
  }

  // A SAELens folder in sae/ (core/io/saelens.h) of a 64 -> 128 SAE with constant weights.
  static void WriteSaeLens(const TempDir& checkpoint, int64_t tokens) {
    constexpr int64_t kDIn = 64, kDSae = 128;
    checkpoint.Write(
        "sae/cfg.json",
        absl::StrCat(R"({"architecture": "standard", "d_in": )", kDIn, R"(, "d_sae": )", kDSae,
                     R"(, "hook_name": "blocks.0.hook_resid_pre", "training_tokens": )", tokens,
                     "}"));
    io::SafetensorsWriter writer;
    auto add = [&](const char* name, std::vector<int64_t> shape) {
      int64_t count = 1;
      for (int64_t d : shape) count *= d;
      std::vector<float> values(static_cast<size_t>(count), 0.01f);
      auto bytes = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(values.data()),
                                       values.size() * sizeof(float));
      EXPECT_TRUE(writer.Add(name, io::DType::kF32, std::move(shape), bytes).ok());
    };
    add("W_enc", {kDIn, kDSae});
    add("b_enc", {kDSae});
    add("W_dec", {kDSae, kDIn});
    add("b_dec", {kDIn});
    EXPECT_TRUE(writer.Write(checkpoint.path() + "/sae/sae_weights.safetensors").ok());
  }

  const FakeWorkerOptions options_;
  const std::unique_ptr<client::WorkerAgent> agent_;
  std::atomic<bool> quit_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::vector<int64_t> resumed_from_;
};

// run.yaml text for tests: `steps` steps of 64 tokens on the given gang.
inline std::string TestRunYaml(int activation_servers, int trainers, int64_t steps,
                               int64_t max_restarts = 3) {
  return absl::StrCat(
      "model_path: /models/gpt2-tiny\n"
      "dataset_path: /data/corpus.txt\n"
      "hook_point: blocks.0.hook_resid_pre\n"
      "d_in: 64\n"
      "expansion_factor: 2\n"
      "train_batch_size: 64\n"
      "total_training_tokens: ",
      steps * 64,
      "\n"
      "lr_warm_up_steps: 0\n"
      "activation_servers: ",
      activation_servers, "\ntrainers: ", trainers, "\nmax_restarts: ", max_restarts, "\n");
}

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_FAKE_WORKER_H_
