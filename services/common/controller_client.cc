#include "services/common/controller_client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"
#include "services/common/checkpoint_archive.h"
#include "services/common/sha256.h"

namespace sae::client {
namespace {

// A stream carries at least this many bytes per second, or its deadline passes.
constexpr double kMinimumStreamBytesPerSecond = 1 << 20;

// Longest single WatchRun stream; a follow reconnects after it.
constexpr absl::Duration kWatchStreamLength = absl::Minutes(5);

absl::Duration TransferTime(int64_t bytes) {
  return absl::Seconds(static_cast<double>(bytes) / kMinimumStreamBytesPerSecond);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ControllerClient>> ControllerClient::Connect(
    const ControllerClientOptions& options) {
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel,
                       rpc::CreateChannel(options.address, options.security));
  return std::unique_ptr<ControllerClient>(new ControllerClient(options, std::move(channel)));
}

ControllerClient::ControllerClient(ControllerClientOptions options,
                                   std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Controller::NewStub(channel_)) {}

ControllerClient::~ControllerClient() = default;

void ControllerClient::Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
  rpc::PrepareCall(context, options_.security, timeout);
}

absl::Status ControllerClient::CallError(const grpc::Status& status, const char* call) const {
  absl::Status converted = rpc::ToAbslStatus(status);
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::UnavailableError(absl::StrCat("cannot reach the controller at ",
                                                 options_.address, " (", call,
                                                 "): ", status.error_message()));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::DeadlineExceededError(absl::StrCat("the controller at ", options_.address,
                                                      " did not answer ", call, " in time"));
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(absl::StrCat("the controller at ", options_.address,
                                                     " refused the call: ", status.error_message(),
                                                     " (set --token or ", rpc::kAuthTokenEnv, ")"));
    default:
      return converted;
  }
}

bool ControllerClient::Track(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (cancelled_) return false;
  streams_.insert(context);
  return true;
}

void ControllerClient::Untrack(grpc::ClientContext* context) {
  std::lock_guard<std::mutex> lock(mutex_);
  streams_.erase(context);
}

void ControllerClient::Cancel() {
  std::lock_guard<std::mutex> lock(mutex_);
  cancelled_ = true;
  for (grpc::ClientContext* context : streams_) context->TryCancel();
}

// ---- Unary calls ----

absl::StatusOr<v1::Run> ControllerClient::SubmitRun(const v1::SubmitRunRequest& request) {
  v1::Run run;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::SubmitRun, request, &run, "SubmitRun"));
  return run;
}

absl::StatusOr<v1::Run> ControllerClient::GetRun(const std::string& run_id) {
  v1::GetRunRequest request;
  request.set_run_id(run_id);
  v1::Run run;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::GetRun, request, &run, "GetRun"));
  return run;
}

absl::StatusOr<std::vector<v1::Run>> ControllerClient::ListRuns(
    const std::vector<v1::RunState>& states) {
  v1::ListRunsRequest request;
  for (v1::RunState state : states) request.add_states(state);
  v1::ListRunsResponse response;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::ListRuns, request, &response, "ListRuns"));
  return std::vector<v1::Run>(response.runs().begin(), response.runs().end());
}

absl::StatusOr<v1::Run> ControllerClient::StopRun(const std::string& run_id,
                                                  const std::string& reason) {
  v1::StopRunRequest request;
  request.set_run_id(run_id);
  request.set_reason(reason);
  v1::Run run;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::StopRun, request, &run, "StopRun"));
  return run;
}

absl::Status ControllerClient::DeleteRun(const std::string& run_id) {
  v1::DeleteRunRequest request;
  request.set_run_id(run_id);
  v1::DeleteRunResponse response;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::DeleteRun, request, &response, "DeleteRun"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::CheckpointManifest>> ControllerClient::ListCheckpoints(
    const std::string& run_id) {
  v1::ListCheckpointsRequest request;
  request.set_run_id(run_id);
  v1::ListCheckpointsResponse response;
  SAE_RETURN_IF_ERROR(
      Call(&v1::Controller::Stub::ListCheckpoints, request, &response, "ListCheckpoints"));
  return std::vector<v1::CheckpointManifest>(response.checkpoints().begin(),
                                             response.checkpoints().end());
}

absl::StatusOr<std::vector<v1::Worker>> ControllerClient::ListWorkers() {
  v1::ListWorkersRequest request;
  v1::ListWorkersResponse response;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::ListWorkers, request, &response, "ListWorkers"));
  return std::vector<v1::Worker>(response.workers().begin(), response.workers().end());
}

absl::StatusOr<v1::RegisterWorkerResponse> ControllerClient::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  v1::RegisterWorkerResponse response;
  SAE_RETURN_IF_ERROR(
      Call(&v1::Controller::Stub::RegisterWorker, request, &response, "RegisterWorker"));
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> ControllerClient::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  SAE_RETURN_IF_ERROR(Call(&v1::Controller::Stub::Heartbeat, request, &response, "Heartbeat"));
  return response;
}

absl::StatusOr<v1::ReportProgressResponse> ControllerClient::ReportProgress(
    const v1::ReportProgressRequest& request) {
  v1::ReportProgressResponse response;
  SAE_RETURN_IF_ERROR(
      Call(&v1::Controller::Stub::ReportProgress, request, &response, "ReportProgress"));
  return response;
}

// ---- Streams ----

absl::Status ControllerClient::WatchRun(const std::string& run_id, uint64_t after_sequence,
                                        bool follow,
                                        const std::function<bool(const v1::RunEvent&)>& on_event,
                                        absl::Time deadline, absl::Duration unavailable_grace) {
  uint64_t last = after_sequence;
  std::optional<absl::Time> unavailable_since;
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("gave up waiting for run ", run_id, " (timeout)"));
    }
    absl::Time stream_deadline = std::min(deadline, now + kWatchStreamLength);
    grpc::ClientContext context;
    Prepare(&context, stream_deadline - now);
    if (!Track(&context)) return absl::CancelledError("cancelled");
    v1::WatchRunRequest request;
    request.set_run_id(run_id);
    request.set_after_sequence(last);
    request.set_follow(follow);
    std::unique_ptr<grpc::ClientReader<v1::RunEvent>> reader = stub_->WatchRun(&context, request);
    v1::RunEvent event;
    bool stopped_by_caller = false;
    while (reader->Read(&event)) {
      unavailable_since.reset();
      backoff = absl::Milliseconds(100);
      last = event.sequence();
      if (!on_event(event)) {
        stopped_by_caller = true;
        context.TryCancel();
        break;
      }
    }
    grpc::Status status = reader->Finish();
    Untrack(&context);
    if (stopped_by_caller) return absl::OkStatus();
    if (status.ok()) return absl::OkStatus();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cancelled_) return absl::CancelledError("cancelled");
    }
    if (!follow) return CallError(status, "WatchRun");
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) continue;  // next stream
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return CallError(status, "WatchRun");
    }
    if (!unavailable_since) unavailable_since = absl::Now();
    if (absl::Now() - *unavailable_since > unavailable_grace) return CallError(status, "WatchRun");
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::StatusOr<v1::CheckpointManifest> ControllerClient::DownloadCheckpoint(
    const std::string& run_id, std::optional<int64_t> step, const std::string& dir) {
  // The manifest first, to size the stream's deadline.
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> checkpoints, ListCheckpoints(run_id));
  if (checkpoints.empty()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no checkpoint"));
  }
  int64_t expected_bytes = checkpoints.back().total_bytes();
  for (const v1::CheckpointManifest& manifest : checkpoints) {
    if (step && manifest.step() == *step) expected_bytes = manifest.total_bytes();
  }

  v1::DownloadCheckpointRequest request;
  request.set_run_id(run_id);
  if (step) request.set_step(*step);
  return Download(request, expected_bytes, dir);
}

absl::StatusOr<v1::CheckpointManifest> ControllerClient::DownloadFeatures(
    const std::string& run_id, const std::string& dir) {
  SAE_ASSIGN_OR_RETURN(v1::Run run, GetRun(run_id));
  if (!run.has_features_step()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no feature dashboards (saectl "
                                            "features ", run_id, " makes them)"));
  }
  v1::DownloadCheckpointRequest request;
  request.set_run_id(run_id);
  request.set_features(true);
  return Download(request, run.features_bytes(), dir);
}

absl::StatusOr<v1::CheckpointManifest> ControllerClient::Download(
    const v1::DownloadCheckpointRequest& request, int64_t expected_bytes, const std::string& dir) {
  const std::string& run_id = request.run_id();
  grpc::ClientContext context;
  Prepare(&context, options_.timeout + TransferTime(expected_bytes));
  if (!Track(&context)) return absl::CancelledError("cancelled");
  std::unique_ptr<grpc::ClientReader<v1::DownloadCheckpointResponse>> reader =
      stub_->DownloadCheckpoint(&context, request);

  v1::CheckpointManifest manifest;
  bool have_manifest = false;
  int32_t next_chunk = 0;
  int64_t received = 0;
  rpc::Sha256 whole;
  std::unique_ptr<ArchiveExtractor> extractor;
  absl::Status failure;
  v1::DownloadCheckpointResponse message;
  while (failure.ok() && reader->Read(&message)) {
    if (message.has_manifest()) {
      manifest = message.manifest();
      have_manifest = true;
      auto created = ArchiveExtractor::Create(dir);
      if (!created.ok()) {
        failure = created.status();
      } else {
        extractor = std::move(*created);
      }
      continue;
    }
    const v1::CheckpointChunk& chunk = message.chunk();
    if (!have_manifest || chunk.index() != next_chunk || chunk.index() >= manifest.chunk_count()) {
      failure = absl::DataLossError(
          absl::StrCat("checkpoint stream of run ", run_id, ": unexpected chunk ", chunk.index()));
      break;
    }
    if (rpc::Sha256::Of(chunk.data()) != manifest.chunks(chunk.index()).sha256()) {
      failure = absl::DataLossError(absl::StrCat("checkpoint of run ", run_id, " step ",
                                                 manifest.step(), ": chunk ", chunk.index(),
                                                 " does not match its SHA-256"));
      break;
    }
    whole.Update(chunk.data());
    received += static_cast<int64_t>(chunk.data().size());
    ++next_chunk;
    failure = extractor->Append(chunk.data());
  }
  if (!failure.ok()) context.TryCancel();
  grpc::Status status = reader->Finish();
  Untrack(&context);
  SAE_RETURN_IF_ERROR(failure);
  if (!status.ok()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cancelled_) return absl::CancelledError("cancelled");
    }
    return CallError(status, "DownloadCheckpoint");
  }
  if (!have_manifest || next_chunk != manifest.chunk_count() ||
      received != manifest.total_bytes()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint stream of run ", run_id, " ended before its last chunk"));
  }
  if (whole.Finish() != manifest.sha256()) {
    return absl::DataLossError(absl::StrCat("checkpoint of run ", run_id, " step ", manifest.step(),
                                            " does not match its SHA-256"));
  }
  SAE_RETURN_IF_ERROR(extractor->Finish());
  return manifest;
}

absl::StatusOr<v1::CheckpointManifest> ControllerClient::UploadCheckpoint(
    const v1::UploadHeader& header, const std::string& dir) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ArchiveReader> archive, ArchiveReader::Open(dir));

  grpc::ClientContext context;
  Prepare(&context, options_.timeout + TransferTime(archive->total_bytes()));
  if (!Track(&context)) return absl::CancelledError("cancelled");
  v1::CheckpointManifest manifest;
  std::unique_ptr<grpc::ClientWriter<v1::UploadCheckpointRequest>> writer =
      stub_->UploadCheckpoint(&context, &manifest);

  absl::Status failure;
  bool stream_open = true;
  v1::UploadCheckpointRequest message;
  *message.mutable_header() = header;
  stream_open = writer->Write(message);

  rpc::Sha256 whole;
  int32_t chunks = 0;
  int64_t bytes = 0;
  std::string data;
  while (stream_open) {
    failure = archive->Read(kCheckpointChunkBytes, &data);
    if (!failure.ok() || data.empty()) break;
    whole.Update(data);
    message.Clear();
    v1::CheckpointChunk* chunk = message.mutable_chunk();
    chunk->set_index(chunks++);
    chunk->set_sha256(rpc::Sha256::Of(data));
    chunk->set_data(std::move(data));
    bytes += static_cast<int64_t>(chunk->data().size());
    stream_open = writer->Write(message);
  }
  if (!failure.ok()) {
    // Leaving without a commit makes the controller drop what it staged.
    context.TryCancel();
  } else if (stream_open) {
    message.Clear();
    v1::UploadCommit* commit = message.mutable_commit();
    commit->set_chunk_count(chunks);
    commit->set_total_bytes(bytes);
    commit->set_sha256(whole.Finish());
    stream_open = writer->Write(message);
  }
  if (stream_open) writer->WritesDone();
  grpc::Status status = writer->Finish();
  Untrack(&context);
  SAE_RETURN_IF_ERROR(failure);
  if (!status.ok()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cancelled_) return absl::CancelledError("cancelled");
    }
    return CallError(status, "UploadCheckpoint");
  }
  return manifest;
}

}  // namespace sae::client
