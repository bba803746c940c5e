// A real sae-controller process killed with SIGKILL in the middle of a checkpoint upload: after
// a restart no part of that checkpoint is visible, the checkpoints committed before are intact,
// and no orphaned chunk stays in the store.
#include <httplib.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "sae/v1/controller.grpc.pb.h"
#include "services/common/controller_client.h"
#include "services/common/sha256.h"
#include "services/controller/controller_process_for_tests.h"
#include "services/controller/run_store.h"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/fake_worker.h"
#include "support/ports.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;
using testing_support::Connect;
using testing_support::ControllerProcess;

TEST(ControllerCrashTest, KilledDuringAnUploadShowsNoPartOfThatCheckpointAfterRestart) {
  TempDir folder;
  std::string data_dir = folder.path() + "/db";
  auto controller = std::make_unique<ControllerProcess>(data_dir, folder.path());
  ASSERT_FALSE(controller->address().empty());
  auto client = Connect(controller->address());

  // A running run: one activation server and one trainer, registered by hand.
  v1::RegisterWorkerRequest server;
  server.set_role(v1::WORKER_ROLE_ACTIVATION_SERVER);
  server.set_address("127.0.0.1:1");
  ASSERT_TRUE(client->RegisterWorker(server).ok());
  v1::RegisterWorkerRequest trainer_request;
  trainer_request.set_role(v1::WORKER_ROLE_TRAINER);
  trainer_request.set_address("127.0.0.1:2");
  auto trainer = client->RegisterWorker(trainer_request);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  v1::SubmitRunRequest submit;
  submit.set_config_yaml(support::TestRunYaml(1, 1, 1000));
  auto run = client->SubmitRun(submit);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->state(), v1::RUN_STATE_RUNNING);

  // A first checkpoint, committed whole.
  TempDir checkpoint;
  checkpoint.Write("state.json", "10");
  std::string weights(1'500'000, 'w');
  checkpoint.Write("state.safetensors", weights);
  v1::UploadHeader header;
  header.set_worker_id(trainer->worker_id());
  header.set_run_id(run->run_id());
  header.set_step(10);
  header.set_tokens(640);
  auto committed = client->UploadCheckpoint(header, checkpoint.path());
  ASSERT_TRUE(committed.ok()) << committed.status();

  // A second one streamed slowly, and the controller killed half-way.
  auto channel = *rpc::CreateChannel(controller->address(), rpc::ClientSecurity{});
  auto stub = v1::Controller::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::CheckpointManifest ignored;
  auto writer = stub->UploadCheckpoint(&context, &ignored);
  v1::UploadCheckpointRequest message;
  header.set_step(20);
  *message.mutable_header() = header;
  ASSERT_TRUE(writer->Write(message));
  std::string chunk_data(256 << 10, 'x');
  for (int i = 0; i < 6; ++i) {
    message.Clear();
    message.mutable_chunk()->set_index(i);
    message.mutable_chunk()->set_data(chunk_data);
    message.mutable_chunk()->set_sha256(rpc::Sha256::Of(chunk_data));
    ASSERT_TRUE(writer->Write(message));
  }
  // The controller stored every chunk of this upload (and none is committed) before it dies.
  const double received = static_cast<double>(committed->total_bytes() + 6 * chunk_data.size());
  ASSERT_TRUE(support::Eventually(
      [&] {
        return controller->Metric("sae_controller_checkpoint_received_bytes_total") == received;
      },
      std::chrono::seconds(30)))
      << controller->Metric("sae_controller_checkpoint_received_bytes_total") << " != "
      << received;
  controller->Stop(SIGKILL);
  EXPECT_FALSE(writer->Finish().ok());

  controller = std::make_unique<ControllerProcess>(data_dir, folder.path());
  client = Connect(controller->address());
  // The upload had reached the store: the restarted controller found it and dropped it.
  EXPECT_NE(ReadFile(folder.path() + "/controller.log")->find("dropped 1 checkpoint upload"),
            std::string::npos);
  auto listed = client->ListCheckpoints(run->run_id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].step(), 10);
  auto recovered = client->GetRun(run->run_id());
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(recovered->state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ(recovered->latest_checkpoint_step(), 10);

  TempDir restored;
  auto downloaded = client->DownloadCheckpoint(run->run_id(), 10, restored.path());
  ASSERT_TRUE(downloaded.ok()) << downloaded.status();
  EXPECT_EQ(*ReadFile(restored.path() + "/state.safetensors"), weights);

  controller->Stop(SIGTERM);
  auto store = RunStore::Open(data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->CountChunks(run->run_id()), committed->chunk_count())
      << "chunks of the interrupted upload are left in the store";
}

}  // namespace
}  // namespace sae::controller
