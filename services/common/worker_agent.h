// The worker side of the controller protocol: what sae-activation-server and sae-trainer use
// when started with --controller ADDR.
//
// A WorkerAgent registers the worker, heartbeats on a thread of its own to hold its lease, and
// keeps the worker's current assignment. The worker's main loop reads it:
//
//   WorkerAgentOptions options;
//   options.controller = flags.controller;              // "127.0.0.1:7070"
//   options.role = v1::WORKER_ROLE_TRAINER;
//   options.address = flags.listen;                     // where peers reach this worker
//   SAE_ASSIGN_OR_RETURN(auto agent, WorkerAgent::Start(options));
//   uint64_t seen = 0;
//   while (!shutting_down) {
//     AssignmentState state = agent->WaitForChange(seen, absl::Seconds(1));
//     if (state.version == seen) continue;
//     seen = state.version;
//     // Stop the work of the previous assignment, if any. Then, if state.assignment is set,
//     // start it: parse config_yaml, rendezvous / load the shard, resume from the checkpoint.
//     // Report with agent->ReportProgress(...) as it goes; when state.stop_requested turns
//     // true (trainers), checkpoint at the next step boundary and report OUTCOME_STOPPED.
//   }
//
// Rules of the protocol the agent implements:
//   - An assignment names a run and a generation. A new generation of the same run means the
//     group restarted: tear down and start over (trainers resume from
//     assignment.resume_checkpoint_step; activation servers from assignment.shard_cursor, or
//     keep their state when they serve the same run and shard).
//   - No assignment means: stop what you were doing and wait.
//   - When the controller cannot be reached, the agent keeps the assignment and keeps trying:
//     a controller restart does not disturb the work. When the controller no longer knows the
//     worker (its lease expired, or the controller lost its records), the agent registers again
//     under a new id and the assignment becomes empty.
//
// Checkpoints: UploadCheckpoint ships a directory (core/training/checkpoint.h's layout: the
// trainer's SaveState output and the SAELens export in `sae/`; see
// services/common/checkpoint_archive.h); DownloadCheckpoint restores it into a directory.
#ifndef SAE_SERVICES_COMMON_WORKER_AGENT_H_
#define SAE_SERVICES_COMMON_WORKER_AGENT_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "sae/v1/controller.pb.h"
#include "services/common/controller_client.h"

namespace sae::client {

struct WorkerAgentOptions {
  // host:port of the controller.
  std::string controller = kDefaultControllerAddress;
  // Token and TLS roots for the controller's port.
  rpc::ClientSecurity security;
  // Required: what this worker is.
  v1::WorkerRole role = v1::WORKER_ROLE_UNSPECIFIED;
  // Required: host:port peers reach this worker at (RegisterWorkerRequest.address).
  std::string address;
  // Reported to the controller for humans. Default "": the machine's host name.
  std::string hostname;
  // Trainers: the memory a run may use on this worker (RegisterWorkerRequest.memory_bytes);
  // 0: not reported.
  int64_t memory_bytes = 0;
  // Deadline of each call to the controller.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // How long Start keeps trying to register while the controller is unreachable.
  absl::Duration register_timeout = absl::Seconds(60);
};

// What the controller wants the worker to do. A value.
struct AssignmentState {
  // Grows by one with every change of `assignment` (run, generation, or presence) or of
  // `stop_requested`. 0 before the first heartbeat answered.
  uint64_t version = 0;
  // The work of the current generation; std::nullopt: none.
  std::optional<v1::Assignment> assignment;
  // The run is stopping: trainers checkpoint at the next step boundary and stop.
  bool stop_requested = false;
};

// Thread-safe.
class WorkerAgent {
 public:
  // Registers (retrying for options.register_timeout while the controller is unreachable),
  // asks for the first assignment, and starts heartbeating. InvalidArgument when the role or
  // address is missing; Unavailable when the controller could not be reached in time.
  static absl::StatusOr<std::unique_ptr<WorkerAgent>> Start(const WorkerAgentOptions& options);

  WorkerAgent(const WorkerAgent&) = delete;
  WorkerAgent& operator=(const WorkerAgent&) = delete;
  // Shutdown().
  ~WorkerAgent();

  // The id the controller gave this worker (a new one after a re-registration).
  std::string worker_id() const;

  // The controller's lease: a worker silent this long is lost (RegisterWorkerResponse.lease_ms).
  absl::Duration lease() const;

  // What to do now.
  AssignmentState Current() const;

  // Blocks until Current().version > `after_version`, `timeout` passes or Shutdown() is called;
  // returns Current().
  AssignmentState WaitForChange(uint64_t after_version, absl::Duration timeout) const;

  // Calls `callback` on the heartbeat thread after every change, with the new state. The
  // callback must be quick and must not call back into the agent's blocking methods.
  void SetChangeCallback(std::function<void(const AssignmentState&)> callback);

  // Reports progress of the current assignment. worker_id is filled in; run_id and generation,
  // when left empty/0, are the current assignment's. FailedPrecondition when the assignment is
  // no longer current (drop the report); the answer's stop_requested is also applied to
  // Current().
  absl::StatusOr<v1::ReportProgressResponse> ReportProgress(v1::ReportProgressRequest request);

  // Uploads `dir` as the checkpoint of the current assignment at `step` (`tokens` trained).
  // `final`: the run's final SAE. FailedPrecondition when there is no assignment.
  absl::StatusOr<v1::CheckpointManifest> UploadCheckpoint(const std::string& dir, int64_t step,
                                                          int64_t tokens, bool final);

  // Restores checkpoint `step` of `run_id` into `dir` (trainers resuming:
  // assignment.resume_checkpoint_step).
  absl::StatusOr<v1::CheckpointManifest> DownloadCheckpoint(const std::string& run_id, int64_t step,
                                                            const std::string& dir);

  // Heartbeats now rather than at the next interval, and applies the answer.
  absl::Status HeartbeatNow();

  // The worker's liveness: Unavailable when the heartbeat loop has not run for longer than
  // three call deadlines plus five heartbeat intervals (it is stuck: a deadlock, a hung call).
  // It does not depend on the controller answering: a controller outage must not get every
  // worker restarted.
  absl::Status CheckHealth() const;

  // Stops heartbeating and wakes WaitForChange. The controller notices the worker is gone when
  // its lease expires. Idempotent.
  void Shutdown();

  ControllerClient& client() { return *client_; }

 private:
  WorkerAgent(WorkerAgentOptions options, std::unique_ptr<ControllerClient> client);

  absl::Status Register(absl::Time give_up);
  absl::Status Heartbeat();
  // Applies an answer of the controller to the state; notifies on change.
  void Apply(std::optional<v1::Assignment> assignment, bool stop_requested);
  void Loop();

  const WorkerAgentOptions options_;
  const std::unique_ptr<ControllerClient> client_;

  mutable std::mutex mutex_;  // Guards everything below.
  mutable std::condition_variable changed_;
  std::string worker_id_;
  absl::Duration heartbeat_interval_ = absl::Seconds(1);
  absl::Duration lease_ = absl::Seconds(10);
  AssignmentState state_;
  std::function<void(const AssignmentState&)> callback_;
  bool shutdown_ = false;
  // When the heartbeat loop last started a turn (Unix nanoseconds); not guarded.
  std::atomic<int64_t> loop_turn_unix_ns_{0};

  std::mutex heartbeat_mutex_;  // One heartbeat or registration at a time.
  std::thread thread_;
};

}  // namespace sae::client

#endif  // SAE_SERVICES_COMMON_WORKER_AGENT_H_
