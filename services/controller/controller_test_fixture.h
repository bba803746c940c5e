// The fixture of the Controller tests (controller_test.cc, controller_eval_test.cc): the
// controller's logic without gRPC, on a RocksDB store in a temporary folder and a clock the tests
// move.
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_TEST_FIXTURE_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_TEST_FIXTURE_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "services/controller/controller.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller::controller_testing {

using support::TempDir;
using support::TestRunYaml;

inline constexpr v1::WorkerRole kServer = v1::WORKER_ROLE_ACTIVATION_SERVER;
inline constexpr v1::WorkerRole kTrainer = v1::WORKER_ROLE_TRAINER;

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

}  // namespace sae::controller::controller_testing

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_TEST_FIXTURE_H_
