#include "services/controller/controller_service.h"

#include <optional>

namespace sae::controller {
namespace {

// How long a following WatchRun waits for news before it checks whether its call is still wanted.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(250);
// Events written per read of the store.
constexpr size_t kEventBatch = 256;

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return rpc::ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status Gone(const char* what) { return grpc::Status(grpc::StatusCode::CANCELLED, what); }

}  // namespace

grpc::Status ControllerService::Admit(const grpc::ServerContext& context) const {
  if (grpc::Status denied = auth_.Check(context); !denied.ok()) return denied;
  if (context.IsCancelled()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call was cancelled or expired");
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::SubmitRun(grpc::ServerContext* context,
                                          const v1::SubmitRunRequest* request, v1::Run* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->SubmitRun(*request), response);
}

grpc::Status ControllerService::GetRun(grpc::ServerContext* context,
                                       const v1::GetRunRequest* request, v1::Run* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->GetRun(request->run_id()), response);
}

grpc::Status ControllerService::ListRuns(grpc::ServerContext* context,
                                         const v1::ListRunsRequest* request,
                                         v1::ListRunsResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  for (v1::Run& run : controller_->ListRuns(*request)) *response->add_runs() = std::move(run);
  return grpc::Status::OK;
}

grpc::Status ControllerService::StopRun(grpc::ServerContext* context,
                                        const v1::StopRunRequest* request, v1::Run* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->StopRun(*request), response);
}

grpc::Status ControllerService::DeleteRun(grpc::ServerContext* context,
                                          const v1::DeleteRunRequest* request,
                                          v1::DeleteRunResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return rpc::ToGrpcStatus(controller_->DeleteRun(request->run_id()));
}

grpc::Status ControllerService::WatchRun(grpc::ServerContext* context,
                                         const v1::WatchRunRequest* request,
                                         grpc::ServerWriter<v1::RunEvent>* writer) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  uint64_t after = request->after_sequence();
  while (!context->IsCancelled()) {
    absl::StatusOr<std::vector<v1::RunEvent>> events =
        controller_->ReadEvents(request->run_id(), after, kEventBatch);
    if (!events.ok()) return rpc::ToGrpcStatus(events.status());
    for (const v1::RunEvent& event : *events) {
      if (!writer->Write(event)) return Gone("the client went away");
      after = event.sequence();
    }
    if (!events->empty()) continue;
    if (!request->follow()) return grpc::Status::OK;
    switch (controller_->WaitForEvents(request->run_id(), after, absl::Now() + kWatchPoll)) {
      case Controller::WatchOutcome::kFinished:
        return grpc::Status::OK;
      case Controller::WatchOutcome::kGone:
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            "run " + request->run_id() + " was deleted");
      case Controller::WatchOutcome::kEvents:
      case Controller::WatchOutcome::kTimeout:
        break;
    }
  }
  return Gone("the call was cancelled or expired");
}

grpc::Status ControllerService::ListCheckpoints(grpc::ServerContext* context,
                                                const v1::ListCheckpointsRequest* request,
                                                v1::ListCheckpointsResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  auto manifests = controller_->ListCheckpoints(request->run_id());
  if (!manifests.ok()) return rpc::ToGrpcStatus(manifests.status());
  for (v1::CheckpointManifest& manifest : *manifests) {
    *response->add_checkpoints() = std::move(manifest);
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::DownloadCheckpoint(
    grpc::ServerContext* context, const v1::DownloadCheckpointRequest* request,
    grpc::ServerWriter<v1::DownloadCheckpointResponse>* writer) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  std::optional<int64_t> step;
  if (request->has_step()) step = request->step();
  absl::StatusOr<v1::CheckpointManifest> manifest =
      request->features() ? controller_->FindFeatures(request->run_id())
                          : controller_->FindCheckpoint(request->run_id(), step);
  if (!manifest.ok()) return rpc::ToGrpcStatus(manifest.status());
  v1::DownloadCheckpointResponse message;
  *message.mutable_manifest() = *manifest;
  if (!writer->Write(message)) return Gone("the client went away");
  for (int32_t index = 0; index < manifest->chunk_count(); ++index) {
    absl::StatusOr<std::string> data = controller_->ReadChunk(*manifest, index);
    if (!data.ok()) return rpc::ToGrpcStatus(data.status());
    message.Clear();
    v1::CheckpointChunk* chunk = message.mutable_chunk();
    chunk->set_index(index);
    chunk->set_sha256(manifest->chunks(index).sha256());
    chunk->set_data(std::move(*data));
    if (!writer->Write(message)) return Gone("the client went away");
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::ListWorkers(grpc::ServerContext* context,
                                            const v1::ListWorkersRequest* request,
                                            v1::ListWorkersResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  for (v1::Worker& worker : controller_->ListWorkers()) {
    *response->add_workers() = std::move(worker);
  }
  return grpc::Status::OK;
}

grpc::Status ControllerService::RegisterWorker(grpc::ServerContext* context,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->RegisterWorker(*request), response);
}

grpc::Status ControllerService::Heartbeat(grpc::ServerContext* context,
                                          const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->Heartbeat(*request), response);
}

grpc::Status ControllerService::ReportProgress(grpc::ServerContext* context,
                                               const v1::ReportProgressRequest* request,
                                               v1::ReportProgressResponse* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  return Reply(controller_->ReportProgress(*request), response);
}

grpc::Status ControllerService::UploadCheckpoint(
    grpc::ServerContext* context, grpc::ServerReader<v1::UploadCheckpointRequest>* reader,
    v1::CheckpointManifest* response) {
  if (grpc::Status denied = Admit(*context); !denied.ok()) return denied;
  v1::UploadCheckpointRequest message;
  if (!reader->Read(&message) || !message.has_header()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "UploadCheckpoint: the first message must be the header");
  }
  // Destroying `upload` without a commit drops everything it staged.
  auto upload = controller_->BeginUpload(message.header());
  if (!upload.ok()) return rpc::ToGrpcStatus(upload.status());
  while (reader->Read(&message)) {
    if (message.has_chunk()) {
      absl::Status added = controller_->AddChunk(**upload, message.chunk());
      if (!added.ok()) return rpc::ToGrpcStatus(added);
    } else if (message.has_commit()) {
      return Reply(controller_->CommitUpload(**upload, message.commit()), response);
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "UploadCheckpoint: a second header");
    }
  }
  return grpc::Status(grpc::StatusCode::ABORTED,
                      "UploadCheckpoint: the stream ended without a commit; nothing was kept");
}

}  // namespace sae::controller
