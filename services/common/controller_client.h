// A client of the Controller service (proto/sae/v1/controller.proto): what saectl and the worker
// agent use. Each method is one RPC (or one stream) with a deadline and the bearer token, its
// grpc::Status turned into an absl::Status whose message names the controller.
//
//   ControllerClientOptions options;
//   options.address = "127.0.0.1:7070";
//   SAE_ASSIGN_OR_RETURN(auto client, ControllerClient::Connect(options));
//   SAE_ASSIGN_OR_RETURN(sae::v1::Run run, client->GetRun("demo-x7k2p"));
#ifndef SAE_SERVICES_COMMON_CONTROLLER_CLIENT_H_
#define SAE_SERVICES_COMMON_CONTROLLER_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sae/v1/controller.grpc.pb.h"
#include "services/common/rpc.h"

namespace sae::client {

// The default controller address of saectl, the workers and `saectl cluster up`.
inline constexpr char kDefaultControllerAddress[] = "127.0.0.1:7070";

// Checkpoints travel in chunks of this many bytes.
inline constexpr int64_t kCheckpointChunkBytes = 1 << 20;

struct ControllerClientOptions {
  // host:port of the controller.
  std::string address = kDefaultControllerAddress;
  // Token and TLS roots (services/common/rpc.h).
  rpc::ClientSecurity security;
  // Deadline of each unary call, and of each message of a stream (a stream may last longer in
  // total; see WatchRun).
  absl::Duration timeout = absl::Seconds(30);
};

// Thread-safe: calls may run from several threads at once.
class ControllerClient {
 public:
  // Creates the channel; nothing is sent until the first call. InvalidArgument for an empty
  // address.
  static absl::StatusOr<std::unique_ptr<ControllerClient>> Connect(
      const ControllerClientOptions& options);

  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;
  ~ControllerClient();

  const ControllerClientOptions& options() const { return options_; }

  // ---- User verbs ----
  absl::StatusOr<v1::Run> SubmitRun(const v1::SubmitRunRequest& request);
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id);
  absl::StatusOr<std::vector<v1::Run>> ListRuns(const std::vector<v1::RunState>& states = {});
  absl::StatusOr<v1::Run> StopRun(const std::string& run_id, const std::string& reason = "");
  absl::Status DeleteRun(const std::string& run_id);
  absl::StatusOr<std::vector<v1::CheckpointManifest>> ListCheckpoints(const std::string& run_id);
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers();

  // Calls `on_event` with each event of the run after `after_sequence`, in order. Without
  // `follow` it returns once the stored events were delivered. With `follow` it keeps going
  // until the event of the run's final state was delivered, reconnecting from the last
  // sequence seen when a stream ends early (each stream lasts at most 5 minutes) or the
  // controller is briefly unavailable (up to `unavailable_grace`), so no event is lost or
  // repeated. Stops early, returning OK, when `on_event` returns false. DeadlineExceeded when
  // `deadline` passes first; Cancelled after Cancel().
  absl::Status WatchRun(const std::string& run_id, uint64_t after_sequence, bool follow,
                        const std::function<bool(const v1::RunEvent&)>& on_event,
                        absl::Time deadline = absl::InfiniteFuture(),
                        absl::Duration unavailable_grace = absl::Seconds(60));

  // Downloads a checkpoint (`step`, or the newest when absent) and extracts its archive into
  // `dir` (created when missing). Every chunk's SHA-256 and the archive's are checked.
  // Returns its manifest. NotFound when the run or the checkpoint does not exist; DataLoss when
  // a digest does not match.
  absl::StatusOr<v1::CheckpointManifest> DownloadCheckpoint(const std::string& run_id,
                                                            std::optional<int64_t> step,
                                                            const std::string& dir);
  // Downloads the run's feature dashboards (`saectl features RUN`) into `dir`, as
  // DownloadCheckpoint. NotFound when the run has none.
  absl::StatusOr<v1::CheckpointManifest> DownloadFeatures(const std::string& run_id,
                                                          const std::string& dir);

  // ---- Worker verbs ----
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::ReportProgressResponse> ReportProgress(
      const v1::ReportProgressRequest& request);
  // Archives `dir` (services/common/checkpoint_archive.h) and uploads it as the checkpoint
  // `header` describes (or, with header.features, as the run's feature dashboards: a user's
  // upload). Returns the committed manifest.
  absl::StatusOr<v1::CheckpointManifest> UploadCheckpoint(const v1::UploadHeader& header,
                                                          const std::string& dir);

  // Cancels the streams in progress (WatchRun, DownloadCheckpoint, UploadCheckpoint), which
  // return Cancelled, and makes later ones return Cancelled at once. Safe from any thread (not
  // from a signal handler).
  void Cancel();

 private:
  ControllerClient(ControllerClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Streams the archive `request` names into `dir`, checking every digest; `expected_bytes`
  // sizes the deadline.
  absl::StatusOr<v1::CheckpointManifest> Download(const v1::DownloadCheckpointRequest& request,
                                                  int64_t expected_bytes, const std::string& dir);
  // Prepares a call's context: deadline and token.
  void Prepare(grpc::ClientContext* context, absl::Duration timeout) const;
  // One unary call of `method` with the deadline and token; `name` names it in errors.
  template <typename Request, typename Response>
  absl::Status Call(grpc::Status (v1::Controller::Stub::*method)(grpc::ClientContext*,
                                                                 const Request&, Response*),
                    const Request& request, Response* response, const char* name) const {
    grpc::ClientContext context;
    Prepare(&context, options_.timeout);
    grpc::Status status = (stub_.get()->*method)(&context, request, response);
    return status.ok() ? absl::OkStatus() : CallError(status, name);
  }
  // An absl::Status for a failed call, naming the controller and the call.
  absl::Status CallError(const grpc::Status& status, const char* call) const;
  // Registers a stream's context for Cancel(); false when already cancelled.
  bool Track(grpc::ClientContext* context);
  void Untrack(grpc::ClientContext* context);

  const ControllerClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Controller::Stub> stub_;

  std::mutex mutex_;  // Guards streams_ and cancelled_.
  std::set<grpc::ClientContext*> streams_;
  bool cancelled_ = false;
};

}  // namespace sae::client

#endif  // SAE_SERVICES_COMMON_CONTROLLER_CLIENT_H_
