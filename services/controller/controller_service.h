// The Controller gRPC service: each handler checks the bearer token, hands the request to
// Controller and writes back its answer or its status.
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_SERVICE_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_SERVICE_H_

#include <string>

#include "sae/v1/controller.grpc.pb.h"
#include "services/common/rpc.h"
#include "services/controller/controller.h"

namespace sae::controller {

class ControllerService final : public v1::Controller::Service {
 public:
  // `controller` must outlive the service. An empty `auth_token` accepts every call.
  ControllerService(Controller* controller, std::string auth_token)
      : controller_(controller), auth_(std::move(auth_token)) {}

  grpc::Status SubmitRun(grpc::ServerContext* context, const v1::SubmitRunRequest* request,
                         v1::Run* response) override;
  grpc::Status GetRun(grpc::ServerContext* context, const v1::GetRunRequest* request,
                      v1::Run* response) override;
  grpc::Status ListRuns(grpc::ServerContext* context, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override;
  grpc::Status StopRun(grpc::ServerContext* context, const v1::StopRunRequest* request,
                       v1::Run* response) override;
  grpc::Status DeleteRun(grpc::ServerContext* context, const v1::DeleteRunRequest* request,
                         v1::DeleteRunResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context, const v1::WatchRunRequest* request,
                        grpc::ServerWriter<v1::RunEvent>* writer) override;
  grpc::Status ListCheckpoints(grpc::ServerContext* context,
                               const v1::ListCheckpointsRequest* request,
                               v1::ListCheckpointsResponse* response) override;
  grpc::Status DownloadCheckpoint(
      grpc::ServerContext* context, const v1::DownloadCheckpointRequest* request,
      grpc::ServerWriter<v1::DownloadCheckpointResponse>* writer) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status ReportProgress(grpc::ServerContext* context,
                              const v1::ReportProgressRequest* request,
                              v1::ReportProgressResponse* response) override;
  grpc::Status UploadCheckpoint(grpc::ServerContext* context,
                                grpc::ServerReader<v1::UploadCheckpointRequest>* reader,
                                v1::CheckpointManifest* response) override;

 private:
  // The token check, and a refusal of calls whose deadline already passed.
  grpc::Status Admit(const grpc::ServerContext& context) const;

  Controller* const controller_;
  const rpc::BearerTokenCheck auth_;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_SERVICE_H_
