// The controller's memory fit check: a run whose per-trainer estimate no registered trainer can
// hold is refused at submit, and trainers that reported too little memory are not given it.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "core/config/memory_estimate.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "gtest/gtest.h"
#include "services/controller/controller.h"
#include "services/controller/controller_internal.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;
using support::TestRunYaml;

constexpr int64_t kMiB = int64_t{1} << 20;

class ControllerMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = RunStore::Open(folder_.path());
    ASSERT_TRUE(store.ok()) << store.status();
    auto controller = Controller::Open(std::move(*store), ControllerOptions(), &registry_);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = std::move(*controller);
  }

  std::string Register(v1::WorkerRole role, const std::string& address, int64_t memory) {
    v1::RegisterWorkerRequest request;
    request.set_role(role);
    request.set_address(address);
    request.set_memory_bytes(memory);
    auto response = controller_->RegisterWorker(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->worker_id() : "";
  }

  absl::StatusOr<v1::Run> Submit(const std::string& yaml, int64_t estimate) {
    v1::SubmitRunRequest request;
    request.set_config_yaml(yaml);
    request.set_memory_estimate_bytes(estimate);
    return controller_->SubmitRun(request);
  }

  std::string TrainerOf(const v1::Run& run) {
    for (const v1::RunWorker& worker : run.workers()) {
      if (worker.role() == v1::WORKER_ROLE_TRAINER) return worker.worker_id();
    }
    return "";
  }

  TempDir folder_;
  metrics::Registry registry_;
  std::unique_ptr<Controller> controller_;
};

constexpr char kSweep[] = "sweep:\n  l1_coefficient: [0.001, 0.002, 0.004, 0.008]\n";

TEST_F(ControllerMemoryTest, ASweepNoRegisteredTrainerCanHoldIsRefusedWithTheEstimate) {
  Register(v1::WORKER_ROLE_ACTIVATION_SERVER, "127.0.0.1:7001", 0);
  Register(v1::WORKER_ROLE_TRAINER, "127.0.0.1:7101", 64 * kMiB);
  const std::string big = Register(v1::WORKER_ROLE_TRAINER, "127.0.0.1:7102", 1024 * kMiB);

  // Two trainers of 512 MiB each: only one of the two registered can hold that.
  absl::StatusOr<v1::Run> refused = Submit(TestRunYaml(1, 2, 10) + kSweep, 512 * kMiB);
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  const std::string message(refused.status().message());
  for (const char* part : {"512.0 MiB", "2 trainers", "4 SAEs", "only 1 of the 2", "1.00 GiB",
                           "64.0 MiB", "split the sweep", "--memory-limit", "--dry-run"}) {
    EXPECT_TRUE(absl::StrContains(message, part)) << part << " not in: " << message;
  }
  EXPECT_TRUE(controller_->ListRuns(v1::ListRunsRequest()).empty()) << "nothing is queued";

  // One trainer of 512 MiB fits: the run starts, on the trainer that can hold it, although the
  // small one registered first.
  absl::StatusOr<v1::Run> run = Submit(TestRunYaml(1, 1, 10) + kSweep, 512 * kMiB);
  ASSERT_TRUE(run.ok()) << run.status();
  v1::Run placed = *controller_->GetRun(run->run_id());
  EXPECT_EQ(placed.state(), v1::RUN_STATE_RUNNING) << placed.message();
  EXPECT_EQ(TrainerOf(placed), big);
  EXPECT_EQ(placed.memory_estimate_bytes(), 512 * kMiB);

  // The next run that needs the big trainer waits for it, saying why.
  absl::StatusOr<v1::Run> second = Submit(TestRunYaml(1, 1, 10), 512 * kMiB);
  ASSERT_TRUE(second.ok()) << second.status();
  Register(v1::WORKER_ROLE_ACTIVATION_SERVER, "127.0.0.1:7002", 0);
  v1::Run waiting = *controller_->GetRun(second->run_id());
  EXPECT_EQ(waiting.state(), v1::RUN_STATE_PENDING);
  EXPECT_TRUE(absl::StrContains(waiting.message(),
                                "1 trainer with 512.0 MiB for the run needed, 0 of 1 idle have it"))
      << waiting.message();
}

TEST_F(ControllerMemoryTest, WithoutSaectlsFigureTheControllerEstimatesFromDIn) {
  Register(v1::WORKER_ROLE_TRAINER, "127.0.0.1:7101", 256 * kMiB);
  // d_in 768, expansion 64, two SAEs: each holds 2 x 768 x 49152 weights four times over
  // (parameters, two Adam moments, gradients), about 1.2 GB.
  const std::string yaml = TestRunYaml(1, 1, 10) + "sweep:\n  l1_coefficient: [0.001, 0.002]\n";
  const std::string wide = absl::StrCat(
      absl::StrReplaceAll(yaml, {{"d_in: 64\n", "d_in: 768\n"},
                                 {"expansion_factor: 2\n", "expansion_factor: 64\n"}}));
  absl::StatusOr<config::RunConfig> config = config::ParseRunConfig(wide, "run.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::vector<config::SaeChild>> children = config::ExpandSaes(*config);
  ASSERT_TRUE(children.ok()) << children.status();
  const int64_t expected = config::EstimateMemory(*config, *children).total();
  EXPECT_GT(expected, int64_t{2} * 4 * 2 * 768 * 49152 * 4);

  absl::StatusOr<v1::Run> refused = Submit(wide, 0);
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                absl::StrCat("the run needs about ", internal::HumanBytes(expected),
                                             " on each of its 1 trainer (2 SAEs")))
      << refused.status();

  // A small run is estimated the same way and accepted.
  absl::StatusOr<v1::Run> small = Submit(yaml, 0);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_GT(small->memory_estimate_bytes(), 0);
  EXPECT_LT(small->memory_estimate_bytes(), 256 * kMiB);
}

TEST_F(ControllerMemoryTest, TrainersThatReportNoMemoryAreNotCheckedAndTooFewAreWaitedFor) {
  // No trainer registered yet: accepted, it waits.
  absl::StatusOr<v1::Run> run = Submit(TestRunYaml(1, 2, 10) + kSweep, 512 * kMiB);
  ASSERT_TRUE(run.ok()) << run.status();
  // One small trainer of the two needed: not enough known to refuse a later run either.
  Register(v1::WORKER_ROLE_TRAINER, "127.0.0.1:7101", 64 * kMiB);
  EXPECT_TRUE(Submit(TestRunYaml(1, 2, 10) + kSweep, 512 * kMiB).ok());
  // A trainer that reports nothing counts as able.
  Register(v1::WORKER_ROLE_TRAINER, "127.0.0.1:7102", 0);
  EXPECT_TRUE(Submit(TestRunYaml(1, 2, 10), 512 * kMiB).ok());
}

}  // namespace
}  // namespace sae::controller
