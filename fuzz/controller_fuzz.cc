// The controller's request handling (services/controller Controller, in process, on a clock the
// target moves) for arbitrary message contents. An input is a sequence of records
//   u8 verb, u16 little-endian length, that many bytes of payload
// each payload parsed as the request proto of its verb (SubmitRun, GetRun, ListRuns, StopRun,
// DeleteRun, RegisterWorker, Heartbeat, ReportProgress, an upload's header, ReadEvents and
// ListCheckpoints) or read as a clock step (Tick) or a restart of the controller on the same
// RocksDB store (Reopen). Ids the controller hands out cannot be guessed, so an empty run or
// worker id, or one of a single digit, stands for a run or worker created earlier in the input
// (the digit picks which); an empty generation is the worker's current one.
// Properties: nothing crashes; after every record each run ListRuns lists is listed once and
// GetRun finds it, and every worker ListWorkers shows busy works for a run that exists; a
// controller reopened on the store lists the same runs.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/metrics/registry.h"
#include "fuzz/scratch_dir.h"
#include "google/protobuf/stubs/logging.h"
#include "services/common/sha256.h"
#include "services/controller/controller.h"
#include "spdlog/spdlog.h"

namespace {

using sae::fuzz::PropertyFailed;
namespace v1 = sae::v1;
using sae::controller::Controller;

constexpr int kMaxRecords = 64;

class Session {
 public:
  explicit Session(std::string dir) : dir_(std::move(dir)) { Open(); }

  void Open() {
    controller_.reset();
    registry_ = std::make_unique<sae::metrics::Registry>();
    auto store = sae::controller::RunStore::Open(dir_);
    if (!store.ok()) PropertyFailed("RunStore::Open: " + store.status().ToString());
    sae::controller::ControllerOptions options;
    options.lease = absl::Seconds(10);
    options.stop_timeout = absl::Seconds(60);
    options.now = [this] { return now_; };
    auto controller = Controller::Open(std::move(*store), options, registry_.get());
    if (!controller.ok()) PropertyFailed("Controller::Open: " + controller.status().ToString());
    controller_ = std::move(*controller);
  }

  void Apply(uint8_t verb, const std::string& payload) {
    switch (verb % 12) {
      case 0: {
        v1::SubmitRunRequest request;
        if (!request.ParseFromString(payload)) return;
        auto run = controller_->SubmitRun(request);
        if (run.ok() && !request.validate_only()) runs_.push_back(run->run_id());
        return;
      }
      case 1:
        (void)controller_->GetRun(RunRef(payload));
        return;
      case 2: {
        v1::ListRunsRequest request;
        if (request.ParseFromString(payload)) (void)controller_->ListRuns(request);
        return;
      }
      case 3: {
        v1::StopRunRequest request;
        if (!request.ParseFromString(payload)) return;
        request.set_run_id(RunRef(request.run_id()));
        (void)controller_->StopRun(request);
        return;
      }
      case 4:
        (void)controller_->DeleteRun(RunRef(payload));
        return;
      case 5: {
        v1::RegisterWorkerRequest request;
        if (!request.ParseFromString(payload)) return;
        auto response = controller_->RegisterWorker(request);
        if (response.ok()) workers_.push_back(response->worker_id());
        return;
      }
      case 6: {
        v1::HeartbeatRequest request;
        if (!request.ParseFromString(payload)) return;
        request.set_worker_id(WorkerRef(request.worker_id()));
        const v1::Assignment& assignment = assignments_[request.worker_id()];
        if (request.run_id().empty()) request.set_run_id(assignment.run_id());
        if (request.generation() == 0) request.set_generation(assignment.generation());
        auto response = controller_->Heartbeat(request);
        if (response.ok()) assignments_[request.worker_id()] = response->assignment();
        return;
      }
      case 7: {
        v1::ReportProgressRequest request;
        if (!request.ParseFromString(payload)) return;
        request.set_worker_id(WorkerRef(request.worker_id()));
        const v1::Assignment& assignment = assignments_[request.worker_id()];
        if (request.run_id().empty()) request.set_run_id(assignment.run_id());
        if (request.generation() == 0) request.set_generation(assignment.generation());
        (void)controller_->ReportProgress(request);
        return;
      }
      case 8:
        now_ += absl::Seconds(payload.empty() ? 1 : static_cast<uint8_t>(payload[0]));
        controller_->Tick();
        return;
      case 9:
        Upload(payload);
        return;
      case 10: {
        const std::string run_id = RunRef(payload);
        (void)controller_->ReadEvents(run_id, 0, 1000);
        (void)controller_->ListCheckpoints(run_id);
        (void)controller_->FindCheckpoint(run_id, std::nullopt);
        (void)controller_->FindFeatures(run_id);
        return;
      }
      case 11: {
        const std::set<std::string> before = RunIds();
        Open();
        if (RunIds() != before) PropertyFailed("a reopened controller lists other runs");
        return;
      }
    }
  }

  // The invariants that hold after every record.
  void Check() const {
    std::set<std::string> seen;
    static const bool verbose = std::getenv("SAE_FUZZ_VERBOSE") != nullptr;
    for (const v1::Run& run : controller_->ListRuns(v1::ListRunsRequest())) {
      if (verbose) {
        std::fprintf(stderr, "run %s: %s generation %llu\n", run.run_id().c_str(),
                     v1::RunState_Name(run.state()).c_str(),
                     static_cast<unsigned long long>(run.generation()));
      }
      if (!seen.insert(run.run_id()).second) PropertyFailed("ListRuns lists a run twice");
      if (!controller_->GetRun(run.run_id()).ok()) PropertyFailed("GetRun misses a listed run");
    }
    for (const v1::Worker& worker : controller_->ListWorkers()) {
      if (!worker.run_id().empty() && seen.count(worker.run_id()) == 0) {
        PropertyFailed(absl::StrCat("worker ", worker.worker_id(), " works for run ",
                                    worker.run_id(), ", which does not exist"));
      }
    }
  }

 private:
  static std::string Pick(const std::vector<std::string>& ids, const std::string& given) {
    if (ids.empty() || given.size() > 1) return given;
    if (given.empty()) return ids.back();
    if (given[0] >= '0' && given[0] <= '9') return ids[(given[0] - '0') % ids.size()];
    return given;
  }
  std::string RunRef(const std::string& given) const { return Pick(runs_, given); }
  std::string WorkerRef(const std::string& given) const { return Pick(workers_, given); }

  std::set<std::string> RunIds() const {
    std::set<std::string> ids;
    for (const v1::Run& run : controller_->ListRuns(v1::ListRunsRequest()))
      ids.insert(run.run_id());
    return ids;
  }

  // An upload of one chunk whose payload is the header; the commit's counts are right.
  void Upload(const std::string& payload) {
    v1::UploadHeader header;
    if (!header.ParseFromString(payload)) return;
    if (!header.features()) header.set_worker_id(WorkerRef(header.worker_id()));
    const v1::Assignment& assignment = assignments_[header.worker_id()];
    header.set_run_id(RunRef(header.run_id().empty() ? assignment.run_id() : header.run_id()));
    if (header.generation() == 0) header.set_generation(assignment.generation());
    auto upload = controller_->BeginUpload(header);
    if (!upload.ok()) return;
    const std::string data = "weights " + payload;
    v1::CheckpointChunk chunk;
    chunk.set_index(0);
    chunk.set_data(data);
    chunk.set_sha256(sae::rpc::Sha256::Of(data));
    if (!controller_->AddChunk(**upload, chunk).ok()) return;
    v1::UploadCommit commit;
    commit.set_chunk_count(1);
    commit.set_total_bytes(static_cast<int64_t>(data.size()));
    commit.set_sha256(sae::rpc::Sha256::Of(data));
    (void)controller_->CommitUpload(**upload, commit);
  }

  const std::string dir_;
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::unique_ptr<sae::metrics::Registry> registry_;
  std::unique_ptr<Controller> controller_;
  std::vector<std::string> runs_;
  std::vector<std::string> workers_;
  std::map<std::string, v1::Assignment> assignments_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (std::getenv("SAE_FUZZ_VERBOSE") == nullptr) spdlog::set_level(spdlog::level::off);
  google::protobuf::SetLogHandler(nullptr);  // "invalid UTF-8" for every bad string field
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string dir = sae::fuzz::ScratchDir() + "/controller";
  std::filesystem::remove_all(dir);
  {
    Session session(dir);
    size_t at = 0;
    for (int records = 0; records < kMaxRecords && at + 3 <= size; ++records) {
      const uint8_t verb = data[at];
      const size_t length = std::min<size_t>(data[at + 1] | (data[at + 2] << 8), size - at - 3);
      if (std::getenv("SAE_FUZZ_VERBOSE") != nullptr) std::fprintf(stderr, "verb %d\n", verb % 12);
      session.Apply(verb, std::string(reinterpret_cast<const char*>(data) + at + 3, length));
      session.Check();
      at += 3 + length;
    }
  }
  return 0;
}
