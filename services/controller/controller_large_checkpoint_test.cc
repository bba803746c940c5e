// A checkpoint as large as the GPT-2 small recipe's (d_in 768, expansion 64: d_sae 49152)
// through a real sae-controller process: uploaded and committed, downloaded and compared file by
// file (SHA-256); then a second one of the same size with the controller killed (SIGKILL) half-way,
// of which nothing is left after a restart. Prints the rates and the peak resident memory.
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/common/controller_client.h"
#include "services/common/sha256.h"
#include "services/controller/controller_process_for_tests.h"
#include "services/controller/run_store.h"
#include "support/child_process.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;
using testing_support::Connect;
using testing_support::ControllerProcess;

constexpr int64_t kDIn = 768;
constexpr int64_t kDSae = 768 * 64;

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A float32 safetensors file of `tensors` (name, shape), written in 1 MiB pieces of
// pseudo-random bytes; returns its SHA-256 (hex) or "" on failure. Never holds the file.
std::string WriteLargeSafetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors, uint64_t seed) {
  nlohmann::json header = nlohmann::json::object();
  int64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    int64_t bytes = 4;
    for (int64_t d : shape) bytes *= d;
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "wb"),
                                                       &std::fclose);
  if (file == nullptr) return "";
  rpc::Sha256 sha;
  auto put = [&](const std::string& bytes) {
    sha.Update(bytes);
    return std::fwrite(bytes.data(), 1, bytes.size(), file.get()) == bytes.size();
  };
  if (!put(length) || !put(text)) return "";
  std::string block(1 << 20, '\0');
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t left = offset; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<int64_t>(left, block.size()));
    for (size_t i = 0; i + 8 <= n; i += 8) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      std::memcpy(&block[i], &state, 8);
    }
    if (!put(block.substr(0, n))) return "";
    left -= static_cast<int64_t>(n);
  }
  if (std::fflush(file.get()) != 0) return "";
  return absl::BytesToHexString(sha.Finish());
}

// SHA-256 (hex) of a file read in 1 MiB pieces; "" when it cannot be read.
std::string FileSha256(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (file == nullptr) return "";
  rpc::Sha256 sha;
  std::string block(1 << 20, '\0');
  size_t n = 0;
  while ((n = std::fread(block.data(), 1, block.size(), file.get())) > 0) {
    sha.Update(absl::string_view(block.data(), n));
  }
  return absl::BytesToHexString(sha.Finish());
}

// A trainer checkpoint folder of that size: state.safetensors (parameters and both Adam
// moments), sae/sae_weights.safetensors (the parameters again, as exported), state.json.
// Returns the SHA-256 of every file by relative path.
std::map<std::string, std::string> WriteGpt2SmallCheckpoint(const std::string& dir, uint64_t seed) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> parameters = {
      {"W_enc", {kDIn, kDSae}}, {"b_enc", {kDSae}}, {"W_dec", {kDSae, kDIn}}, {"b_dec", {kDIn}}};
  std::vector<std::pair<std::string, std::vector<int64_t>>> state = parameters;
  for (const auto& [name, shape] : parameters) {
    state.emplace_back("adam.exp_avg." + name, shape);
    state.emplace_back("adam.exp_avg_sq." + name, shape);
  }
  std::filesystem::create_directories(dir + "/sae");
  std::map<std::string, std::string> digests;
  digests["state.safetensors"] = WriteLargeSafetensors(dir + "/state.safetensors", state, seed);
  digests["sae/sae_weights.safetensors"] =
      WriteLargeSafetensors(dir + "/sae/sae_weights.safetensors", parameters, seed + 1);
  const std::string json =
      absl::StrCat("{\"step\": ", seed, ", \"d_in\": ", kDIn, ", \"d_sae\": ", kDSae, "}\n");
  EXPECT_TRUE(WriteFileAtomically(dir + "/state.json", json).ok());
  digests["state.json"] = absl::BytesToHexString(rpc::Sha256::Of(json));
  return digests;
}

int64_t FolderBytes(const std::string& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) total += static_cast<int64_t>(entry.file_size());
  }
  return total;
}

double Mib(double bytes) { return bytes / (1 << 20); }

TEST(ControllerLargeCheckpointTest,
     AGpt2SmallSizedCheckpointIsCommittedReadBackAndAKillLeavesNone) {
  TempDir folder("large_checkpoint_test");
  const std::string data_dir = folder.path() + "/db";
  // A lease longer than the test: the hand-registered workers send no heartbeats.
  auto controller = std::make_unique<ControllerProcess>(data_dir, folder.path(), 1800);
  ASSERT_FALSE(controller->address().empty());
  auto client = Connect(controller->address(), absl::Seconds(60));

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

  auto started = Clock::now();
  const std::string source = folder.path() + "/step_10";
  std::map<std::string, std::string> digests = WriteGpt2SmallCheckpoint(source, 10);
  for (const auto& [file, digest] : digests) ASSERT_FALSE(digest.empty()) << file;
  const int64_t bytes = FolderBytes(source);
  // The reference for the rates: making the files here (random bytes, SHA-256, write).
  const double local_rate = Mib(static_cast<double>(bytes)) / SecondsSince(started);
  std::printf(
      "checkpoint of d_in %lld, d_sae %lld: %.3f GB (%.1f MiB) in %zu files, written in "
      "%.1f s\n",
      static_cast<long long>(kDIn), static_cast<long long>(kDSae), bytes / 1e9,
      Mib(static_cast<double>(bytes)), digests.size(), SecondsSince(started));
  ASSERT_GT(bytes, 1'200'000'000);

  v1::UploadHeader header;
  header.set_worker_id(trainer->worker_id());
  header.set_run_id(run->run_id());
  header.set_step(10);
  header.set_tokens(10 * 4096);
  started = Clock::now();
  auto committed = client->UploadCheckpoint(header, source);
  const double upload_seconds = SecondsSince(started);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_GE(committed->total_bytes(), bytes);
  const double upload_rate = Mib(static_cast<double>(committed->total_bytes())) / upload_seconds;
  std::printf(
      "upload and commit: %.1f MiB in %d chunks, %.1f s, %.0f MiB/s; writing the files "
      "here: %.0f MiB/s (ratio %.2f)\n",
      Mib(static_cast<double>(committed->total_bytes())), committed->chunk_count(), upload_seconds,
      upload_rate, local_rate, upload_rate / local_rate);
  auto listed = client->ListCheckpoints(run->run_id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);

  // Read back and compared file by file; the source goes to make room for the next one.
  {
    TempDir restored("large_checkpoint_download");
    started = Clock::now();
    auto downloaded = client->DownloadCheckpoint(run->run_id(), 10, restored.path());
    const double download_seconds = SecondsSince(started);
    ASSERT_TRUE(downloaded.ok()) << downloaded.status();
    const double download_rate =
        Mib(static_cast<double>(committed->total_bytes())) / download_seconds;
    std::printf("download: %.1f s, %.0f MiB/s (ratio %.2f to writing the files here)\n",
                download_seconds, download_rate, download_rate / local_rate);
    for (const auto& [file, digest] : digests) {
      EXPECT_EQ(FileSha256(restored.path() + "/" + file), digest) << file;
    }
    EXPECT_EQ(FolderBytes(restored.path()), bytes);
  }
  std::filesystem::remove_all(source);

  // A second one of the same size, the controller killed once half of it has been stored.
  const std::string second = folder.path() + "/step_20";
  WriteGpt2SmallCheckpoint(second, 20);
  header.set_step(20);
  const double received_before =
      controller->Metric("sae_controller_checkpoint_received_bytes_total");
  ASSERT_EQ(received_before, static_cast<double>(committed->total_bytes()));
  absl::StatusOr<v1::CheckpointManifest> interrupted;
  std::thread uploader([&] {
    auto other = Connect(controller->address(), absl::Seconds(60));
    interrupted = other->UploadCheckpoint(header, second);
  });
  const double half = received_before + static_cast<double>(bytes) / 2;
  const bool reached = support::Eventually(
      [&] { return controller->Metric("sae_controller_checkpoint_received_bytes_total") >= half; },
      std::chrono::seconds(300));
  const int64_t peak = controller->PeakResidentBytes();
  const double received = controller->Metric("sae_controller_checkpoint_received_bytes_total");
  controller->Stop(SIGKILL);
  uploader.join();
  ASSERT_TRUE(reached) << "the second upload did not reach half-way";
  EXPECT_FALSE(interrupted.ok());
  EXPECT_LT(received, received_before + static_cast<double>(bytes))
      << "the upload finished before the kill";
  std::printf(
      "controller killed with %.1f MiB of the second checkpoint stored; its peak "
      "resident memory: %.1f MiB\n",
      Mib(received - received_before), Mib(static_cast<double>(peak)));

  started = Clock::now();
  controller = std::make_unique<ControllerProcess>(data_dir, folder.path(), 1800);
  ASSERT_FALSE(controller->address().empty());
  client = Connect(controller->address(), absl::Seconds(60));
  std::printf("restart: %.1f s\n", SecondsSince(started));
  EXPECT_NE(ReadFile(folder.path() + "/controller.log")->find("dropped 1 checkpoint upload"),
            std::string::npos);
  listed = client->ListCheckpoints(run->run_id());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].step(), 10);
  EXPECT_EQ((*listed)[0].sha256(), committed->sha256());
  auto recovered = client->GetRun(run->run_id());
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(recovered->latest_checkpoint_step(), 10);
  controller->Stop(SIGTERM);

  auto store = RunStore::Open(data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->CountChunks(run->run_id()), committed->chunk_count())
      << "chunks of the interrupted upload are left in the store";

  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  std::printf("test process (client side) peak resident memory: %.1f MiB\n",
              usage.ru_maxrss / 1024.0);
}

}  // namespace
}  // namespace sae::controller
