// Faults of the controller's data dir: a full disk (a small tmpfs filled on purpose) and
// corruption (a rewritten chunk, a flipped byte in a blob file, a flipped byte in an SST block).
// Each is detected, reported with a status that says what happened and what to do, and never
// turns into other bytes served as a checkpoint.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/metadata.h"
#include "rocksdb/options.h"
#include "services/common/controller_client.h"
#include "services/controller/controller_server.h"
#include "services/controller/run_store.h"
#include "support/child_process.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"
#include "support/tmpfs.h"

namespace sae::controller {
namespace {

using support::TempDir;

// Pseudo-random bytes (incompressible, unlike a repeated letter).
std::string RandomBytes(size_t size, uint64_t seed) {
  std::string bytes(size, '\0');
  uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    bytes[i] = static_cast<char>(state);
  }
  return bytes;
}

// Flips every bit of the byte at `offset` of `path`.
void FlipByte(const std::string& path, int64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(file) << path;
  file.seekg(offset);
  char c = 0;
  file.read(&c, 1);
  c = static_cast<char>(~c);
  file.seekp(offset);
  file.write(&c, 1);
  ASSERT_TRUE(file) << path;
}

// The RocksDB database of a stopped controller, opened directly with every column family (as an
// operator's tool would), to damage it on purpose.
class RawStore {
 public:
  explicit RawStore(const std::string& dir) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& name : names) {
      rocksdb::ColumnFamilyOptions options;
      if (name == "blobs") {  // as RunStore writes it: chunks in blob files
        options.enable_blob_files = true;
        options.min_blob_size = 4096;
      }
      families.emplace_back(name, options);
    }
    rocksdb::DB* db = nullptr;
    rocksdb::Status opened = rocksdb::DB::Open(rocksdb::DBOptions(), dir, families, &handles_, &db);
    EXPECT_TRUE(opened.ok()) << opened.ToString();
    db_.reset(db);
    for (size_t i = 0; i < names.size(); ++i) by_name_[names[i]] = handles_[i];
  }
  ~RawStore() {
    if (db_ == nullptr) return;
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
    db_->Close();
  }

  rocksdb::DB& db() { return *db_; }
  rocksdb::ColumnFamilyHandle* family(const std::string& name) { return by_name_.at(name); }

  // Writes every memtable to files (SST and blob files), so that the bytes are on disk.
  void FlushAll() { ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions(), handles_).ok()); }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> by_name_;
};

class ControllerFaultTest : public ::testing::Test {
 protected:
  void TearDown() override { Stop(); }

  void Start(const std::string& data_dir) {
    ControllerServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = data_dir;
    options.metrics_port = 0;
    options.metrics_bind_address = "127.0.0.1";
    options.controller.lease = absl::Minutes(10);  // the hand-registered workers never beat
    options.tick = absl::Milliseconds(20);
    auto server = ControllerServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ControllerClientOptions client_options;
    client_options.address = server_->address();
    client_options.timeout = absl::Seconds(20);
    client_ = std::move(*client::ControllerClient::Connect(client_options));
  }

  void Stop() {
    client_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
    server_.reset();
  }

  // A running run with one activation server and one trainer registered by hand; sets
  // run_id_ and trainer_id_.
  void StartRun() {
    v1::RegisterWorkerRequest server;
    server.set_role(v1::WORKER_ROLE_ACTIVATION_SERVER);
    server.set_address("127.0.0.1:1");
    ASSERT_TRUE(client_->RegisterWorker(server).ok());
    v1::RegisterWorkerRequest trainer;
    trainer.set_role(v1::WORKER_ROLE_TRAINER);
    trainer.set_address("127.0.0.1:2");
    auto registered = client_->RegisterWorker(trainer);
    ASSERT_TRUE(registered.ok()) << registered.status();
    trainer_id_ = registered->worker_id();
    v1::SubmitRunRequest submit;
    submit.set_config_yaml(support::TestRunYaml(1, 1, 1000));
    auto run = client_->SubmitRun(submit);
    ASSERT_TRUE(run.ok()) << run.status();
    ASSERT_EQ(run->state(), v1::RUN_STATE_RUNNING);
    run_id_ = run->run_id();
  }

  // Uploads a checkpoint folder with state.safetensors of `bytes` random bytes at `step`.
  absl::StatusOr<v1::CheckpointManifest> Upload(int64_t step, size_t bytes,
                                                std::string* weights = nullptr) {
    TempDir checkpoint("fault_checkpoint");
    checkpoint.Write("state.json", absl::StrCat(step));
    std::string data = RandomBytes(bytes, static_cast<uint64_t>(step));
    checkpoint.Write("state.safetensors", data);
    if (weights != nullptr) *weights = std::move(data);
    v1::UploadHeader header;
    header.set_worker_id(trainer_id_);
    header.set_run_id(run_id_);
    header.set_step(step);
    header.set_tokens(step * 64);
    return client_->UploadCheckpoint(header, checkpoint.path());
  }

  // GET /healthz: the HTTP status (0 when unreachable) and body.
  std::pair<int, std::string> Health() {
    httplib::Client http("127.0.0.1", server_->metrics_port());
    httplib::Result got = http.Get("/healthz");
    if (!got) return {0, ""};
    return {got->status, got->body};
  }

  std::unique_ptr<ControllerServer> server_;
  std::unique_ptr<client::ControllerClient> client_;
  std::string run_id_;
  std::string trainer_id_;
};

// The data dir on a 192 MiB tmpfs, filled by another file: a checkpoint upload and a submission
// fail with ResourceExhausted naming the data dir and the fix, /healthz says unhealthy, the run
// and its committed checkpoint stay readable, and once the file is deleted the same controller
// (no restart) takes submissions and uploads again.
TEST_F(ControllerFaultTest, AFullDataDirRefusesWritesClearlyKeepsCommittedDataAndRecovers) {
  TempDir folder("controller_fault_test");
  // RocksDB resumes writes by itself once one write buffer (64 MiB) is free again, so the disk
  // is larger than that.
  support::Tmpfs disk(folder.path() + "/disk", 192 << 20);
  if (!disk.mounted()) GTEST_SKIP() << disk.error();
  const std::string data_dir = disk.path() + "/db";
  Start(data_dir);
  StartRun();
  std::string weights;
  auto committed = Upload(10, 1'500'000, &weights);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(Health().first, 200);

  const int64_t filled = disk.Fill("filler");
  ASSERT_GT(filled, 0) << "the filler file did not reach ENOSPC";
  std::printf("tmpfs of 192 MiB: the filler took %.1f MiB\n", filled / 1048576.0);

  // A checkpoint larger than the whole disk cannot be stored (the write-ahead log may hold
  // room it took beforehand, so anything smaller might fit).
  auto refused = Upload(20, 200 << 20);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "No space left on device"))
      << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), data_dir)) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "free space")) << refused.status();
  std::printf("upload on the full disk: %s\n", std::string(refused.status().message()).c_str());

  // RocksDB stops every write after a failed one; a submission says why.
  v1::SubmitRunRequest submit;
  submit.set_config_yaml(support::TestRunYaml(1, 1, 1000));
  submit.set_name("while-full");
  auto submitted = client_->SubmitRun(submit);
  ASSERT_FALSE(submitted.ok());
  EXPECT_EQ(submitted.status().code(), absl::StatusCode::kResourceExhausted) << submitted.status();
  EXPECT_TRUE(absl::StrContains(submitted.status().message(), data_dir)) << submitted.status();
  EXPECT_TRUE(absl::StrContains(submitted.status().message(), "free space")) << submitted.status();
  auto [code, body] = Health();
  EXPECT_EQ(code, 503) << body;
  EXPECT_TRUE(absl::StrContains(body, "No space left on device")) << body;

  // What was committed stays readable.
  auto run = client_->GetRun(run_id_);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->latest_checkpoint_step(), 10);
  auto listed = client_->ListRuns();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 1u);
  auto checkpoints = client_->ListCheckpoints(run_id_);
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  ASSERT_EQ(checkpoints->size(), 1u);
  EXPECT_EQ((*checkpoints)[0].step(), 10);
  TempDir restored("fault_restored");
  auto downloaded = client_->DownloadCheckpoint(run_id_, 10, restored.path());
  ASSERT_TRUE(downloaded.ok()) << downloaded.status();
  EXPECT_EQ(*ReadFile(restored.path() + "/state.safetensors"), weights);

  // Space freed: RocksDB resumes by itself (its recovery polls the free space) and /healthz
  // turns healthy again, without a restart.
  ASSERT_TRUE(std::filesystem::remove(disk.path() + "/filler"));
  const auto freed = std::chrono::steady_clock::now();
  ASSERT_TRUE(support::Eventually([&] { return Health().first == 200; }, std::chrono::seconds(60)))
      << Health().second;
  std::printf("healthy again %.1f s after the filler was deleted\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - freed).count());
  submitted = client_->SubmitRun(submit);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->name(), "while-full");
  auto again = Upload(20, 1'000'000);
  ASSERT_TRUE(again.ok()) << again.status();
  checkpoints = client_->ListCheckpoints(run_id_);
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.status();
  EXPECT_EQ(checkpoints->size(), 2u);
  Stop();
  // Nothing of the refused upload stayed behind.
  auto store = RunStore::Open(data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->CountChunks(run_id_), committed->chunk_count() + again->chunk_count());
}

// A chunk rewritten in the store (valid for RocksDB, other bytes than were uploaded): the
// controller checks each chunk's SHA-256 before sending it and refuses the download, naming the
// checkpoint; nothing lands in the target folder as weights.
TEST_F(ControllerFaultTest, AStoredChunkThatNoLongerMatchesItsSha256IsNeverSent) {
  TempDir folder("controller_fault_test");
  const std::string data_dir = folder.path() + "/db";
  Start(data_dir);
  StartRun();
  auto committed = Upload(10, 3'000'000);
  ASSERT_TRUE(committed.ok()) << committed.status();
  ASSERT_GE(committed->chunk_count(), 2);
  Stop();
  {
    RawStore raw(data_dir);
    std::unique_ptr<rocksdb::Iterator> it(
        raw.db().NewIterator(rocksdb::ReadOptions(), raw.family("blobs")));
    it->Seek(run_id_ + "/");
    ASSERT_TRUE(it->Valid());
    const std::string key = it->key().ToString();
    std::string value = it->value().ToString();
    value[value.size() / 2] = static_cast<char>(~value[value.size() / 2]);
    it.reset();
    ASSERT_TRUE(raw.db().Put(rocksdb::WriteOptions(), raw.family("blobs"), key, value).ok());
  }
  Start(data_dir);
  TempDir restored("fault_restored");
  auto downloaded = client_->DownloadCheckpoint(run_id_, 10, restored.path());
  ASSERT_FALSE(downloaded.ok());
  EXPECT_EQ(downloaded.status().code(), absl::StatusCode::kDataLoss) << downloaded.status();
  const std::string message(downloaded.status().message());
  EXPECT_TRUE(absl::StrContains(message, "chunk 0 of the checkpoint at step 10 of run " + run_id_))
      << message;
  EXPECT_TRUE(absl::StrContains(message, "SHA-256")) << message;
  std::printf("download of the rewritten chunk: %s\n", message.c_str());
  EXPECT_FALSE(std::filesystem::exists(restored.path() + "/state.safetensors"));
  // The run itself is fine.
  EXPECT_TRUE(client_->GetRun(run_id_).ok());
}

// A flipped byte inside a blob file (where RocksDB keeps the chunks): RocksDB's own record
// checksum fails the read, and the download is refused with a DataLoss naming the checkpoint and
// the damaged file.
TEST_F(ControllerFaultTest, AFlippedByteInABlobFileFailsTheReadWithRocksDbsChecksum) {
  TempDir folder("controller_fault_test");
  const std::string data_dir = folder.path() + "/db";
  Start(data_dir);
  StartRun();
  auto committed = Upload(10, 3'000'000);
  ASSERT_TRUE(committed.ok()) << committed.status();
  Stop();
  { RawStore(data_dir).FlushAll(); }
  std::string blob;
  int64_t blob_size = 0;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    if (entry.path().extension() == ".blob" &&
        static_cast<int64_t>(entry.file_size()) > blob_size) {
      blob = entry.path().string();
      blob_size = static_cast<int64_t>(entry.file_size());
    }
  }
  ASSERT_GT(blob_size, 3'000'000) << "no blob file holds the chunks";
  FlipByte(blob, blob_size / 2);

  Start(data_dir);
  TempDir restored("fault_restored");
  auto downloaded = client_->DownloadCheckpoint(run_id_, 10, restored.path());
  ASSERT_FALSE(downloaded.ok());
  EXPECT_EQ(downloaded.status().code(), absl::StatusCode::kDataLoss) << downloaded.status();
  const std::string message(downloaded.status().message());
  EXPECT_TRUE(absl::StrContains(message, "of the checkpoint at step 10 of run " + run_id_))
      << message;
  EXPECT_TRUE(absl::StrContains(message, "Corruption")) << message;
  EXPECT_TRUE(absl::StrContains(message, "restore the data dir from a backup")) << message;
  std::printf("download through the damaged blob file: %s\n", message.c_str());
  EXPECT_FALSE(std::filesystem::exists(restored.path() + "/state.json") &&
               std::filesystem::exists(restored.path() + "/state.safetensors") &&
               ReadFile(restored.path() + "/state.safetensors")->size() == 3'000'000u)
      << "the damaged checkpoint was written out whole";
}

// A flipped byte in an SST data block of the runs: the read fails with RocksDB's block checksum
// (DataLoss naming the file), so the store refuses to open a corrupt run list rather than load
// other bytes as runs; the controller does not start and says why.
TEST_F(ControllerFaultTest, AFlippedByteInAnSstBlockIsReportedNotReadAsARun) {
  TempDir folder("controller_fault_test");
  const std::string data_dir = folder.path() + "/db";
  {
    auto store = RunStore::Open(data_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    for (int i = 0; i < 50; ++i) {
      v1::Run run;
      run.set_run_id(absl::StrCat("run-", i));
      run.set_name(absl::StrCat("run number ", i));
      run.set_config_yaml(support::TestRunYaml(1, 1, 1000));
      ASSERT_TRUE((*store)->WriteRun(run, {}, Durability::kSynced).ok());
    }
  }
  std::string sst;
  {
    RawStore raw(data_dir);
    raw.FlushAll();
    std::vector<rocksdb::LiveFileMetaData> files;
    raw.db().GetLiveFilesMetaData(&files);
    for (const auto& file : files) {
      if (file.column_family_name == "runs") sst = file.db_path + file.name;
    }
  }
  ASSERT_FALSE(sst.empty()) << "the runs were not flushed to an SST file";
  FlipByte(sst, 64);  // inside the first data block (blocks start at offset 0)

  auto store = RunStore::Open(data_dir);
  absl::Status status = store.ok() ? (*store)->LoadRuns().status() : store.status();
  ASSERT_FALSE(status.ok()) << "50 runs read from a damaged SST file";
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  const std::string name = std::filesystem::path(sst).filename().string();
  EXPECT_TRUE(absl::StrContains(status.message(), name)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "checksum")) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "restore the data dir from a backup")) << status;
  std::printf("reading the runs: %s\n", std::string(status.message()).c_str());
  store = absl::InternalError("closed");

  ControllerServerOptions options;
  options.listen = "127.0.0.1:0";
  options.data_dir = data_dir;
  auto server = ControllerServer::Start(options);
  ASSERT_FALSE(server.ok()) << "a controller started on a damaged run list";
  EXPECT_EQ(server.status().code(), absl::StatusCode::kDataLoss) << server.status();
  EXPECT_TRUE(absl::StrContains(server.status().message(), name)) << server.status();
}

}  // namespace
}  // namespace sae::controller
