// The controller's domain logic, without gRPC: runs and their life, the worker pool, leases,
// gang scheduling, restarts, stops, events and checkpoints. The gRPC service
// (controller_service.h) is a thin shell around it; tests drive it directly too.
//
// Run life (docs/operations.md):
//   SubmitRun          -> PENDING, queued in submission order.
//   gang placed        -> RUNNING: every worker of the gang gets an assignment of the run's
//                         current generation in its next heartbeat reply.
//   lease lost, or a   -> RESTARTING with generation + 1 (trainers resume from the last
//   worker failed         checkpoint, activation servers from their furthest cursor) while
//                         restarts remain, else FAILED with the reason. The whole gang is
//                         released and placed again (preferring the same workers in the same
//                         slots), like a torchrun restart.
//   rank 0 FINISHED    -> SUCCEEDED (after it uploaded the final SAE as a checkpoint).
//   StopRun            -> STOPPED at once when queued; when running, the trainers are asked to
//                         checkpoint and stop, and rank 0's OUTCOME_STOPPED (or the stop
//                         timeout) ends it STOPPED.
// State changes, assignments and checkpoint commits are synced to the store before the call
// returns; progress is written buffered, at most once a second per run.
//
// Thread safety: every method is thread-safe (one mutex; store writes happen under it, except
// the chunks of an upload).
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/metrics/registry.h"
#include "sae/v1/controller.pb.h"
#include "services/common/run_state.h"
#include "services/common/sha256.h"
#include "services/controller/controller_metrics.h"
#include "services/controller/run_store.h"
#include "services/controller/scheduler.h"

namespace sae::controller {

struct ControllerOptions {
  // A worker whose heartbeats stop for this long is lost. Workers heartbeat every third of it.
  absl::Duration lease = absl::Seconds(10);
  // Checkpoints kept per run, newest by step (<= 0: all).
  int checkpoint_retention = 3;
  // A running run asked to stop ends STOPPED after this long even when trainer rank 0 never
  // confirms.
  absl::Duration stop_timeout = absl::Seconds(120);
  // The clock (tests replace it).
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Called with each progress report of trainer rank 0 that carries metrics, after the run took
  // it in, with the controller's lock held: it must be quick and must not call the controller
  // (the console's progress history records the report).
  std::function<void(const v1::Run& run, const v1::ReportProgressRequest& request, absl::Time now)>
      on_progress;
};

// Largest checkpoint chunk accepted.
inline constexpr int64_t kMaxChunkBytes = 16 << 20;

class Controller {
 public:
  class CheckpointUpload;

  // What WaitForEvents saw.
  enum class WatchOutcome {
    kEvents,    // the run has events after the sequence asked about
    kFinished,  // the run is in a final state and every event was read
    kTimeout,   // the deadline passed
    kGone,      // the run does not exist (or was deleted)
  };

  // Recovers every run from `store`: queued runs wait for workers again; a running run keeps
  // its gang, whose workers have one lease period to heartbeat again before they count as lost.
  // Metrics go to `registry`, which must outlive the controller.
  static absl::StatusOr<std::unique_ptr<Controller>> Open(std::unique_ptr<RunStore> store,
                                                          const ControllerOptions& options,
                                                          metrics::Registry* registry);

  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;
  ~Controller();

  // ---- User verbs (the RPCs of the same names) ----
  absl::StatusOr<v1::Run> SubmitRun(const v1::SubmitRunRequest& request);
  absl::StatusOr<v1::Run> GetRun(const std::string& run_id) const;
  std::vector<v1::Run> ListRuns(const v1::ListRunsRequest& request) const;
  absl::StatusOr<v1::Run> StopRun(const v1::StopRunRequest& request);
  absl::Status DeleteRun(const std::string& run_id);
  std::vector<v1::Worker> ListWorkers() const;
  // The controller's /healthz: OK while the run store accepts writes.
  absl::Status CheckHealth() const { return store_->CheckWritable(); }

  // Up to `max_events` events of the run after `after_sequence`. NotFound for an unknown run.
  absl::StatusOr<std::vector<v1::RunEvent>> ReadEvents(const std::string& run_id,
                                                       uint64_t after_sequence,
                                                       size_t max_events) const;
  // Blocks until the run has an event after `after_sequence`, is final with every event read,
  // is gone, or `deadline` passes.
  WatchOutcome WaitForEvents(const std::string& run_id, uint64_t after_sequence,
                             absl::Time deadline) const;

  absl::StatusOr<std::vector<v1::CheckpointManifest>> ListCheckpoints(
      const std::string& run_id) const;
  // The checkpoint at `step`, or the newest when absent. NotFound when there is none.
  absl::StatusOr<v1::CheckpointManifest> FindCheckpoint(const std::string& run_id,
                                                        std::optional<int64_t> step) const;
  absl::StatusOr<std::string> ReadChunk(const v1::CheckpointManifest& manifest,
                                        int32_t index) const;
  // The manifest of the run's feature dashboards (UploadHeader.features); its chunks are read
  // with ReadChunk. NotFound for an unknown run or one without them.
  absl::StatusOr<v1::CheckpointManifest> FindFeatures(const std::string& run_id) const;

  // ---- Worker verbs ----
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request);
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request);
  absl::StatusOr<v1::ReportProgressResponse> ReportProgress(
      const v1::ReportProgressRequest& request);

  // An upload is begun (checks that the worker is a trainer of the run's current generation;
  // for a header with `features`, only that the run exists), fed its chunks in order, and
  // committed; destroying it uncommitted drops what it staged.
  absl::StatusOr<std::unique_ptr<CheckpointUpload>> BeginUpload(const v1::UploadHeader& header);
  // InvalidArgument for a chunk out of order or too large; DataLoss when its SHA-256 does not
  // match.
  absl::Status AddChunk(CheckpointUpload& upload, const v1::CheckpointChunk& chunk);
  // InvalidArgument when the commit's counts or digest disagree with the chunks received;
  // FailedPrecondition when the run moved on (another generation, or it ended; a features
  // upload only needs the run to exist still).
  absl::StatusOr<v1::CheckpointManifest> CommitUpload(CheckpointUpload& upload,
                                                      const v1::UploadCommit& commit);

  // Expires leases, ends stops that timed out, and places queued runs. Call it a few times a
  // lease (ControllerServer does, every 100 ms).
  void Tick();

 private:
  struct WorkerEntry {
    v1::Worker info;  // run_id "" when idle
    absl::Time lease_deadline;
    uint64_t order = 0;  // registration order
  };
  struct RunEntry {
    v1::Run run;
    absl::Time last_progress_write = absl::InfinitePast();
  };

  Controller(std::unique_ptr<RunStore> store, ControllerOptions options,
             std::unique_ptr<ControllerMetrics> metrics);

  // All the private methods below run with mutex_ held.
  absl::Status Recover();
  RunEntry* FindRun(const std::string& run_id);
  const RunEntry* FindRun(const std::string& run_id) const;
  // A new event of `run` with the next sequence, appended to `events`.
  v1::RunEvent& AddEvent(v1::Run& run, v1::RunEvent::Type type, std::string message,
                         std::vector<v1::RunEvent>& events);
  void SetState(v1::Run& run, v1::RunState state, std::string reason,
                std::vector<v1::RunEvent>& events);
  // Writes the run and its new events, then wakes WatchRun streams.
  absl::Status Save(RunEntry& entry, const std::vector<v1::RunEvent>& events,
                    Durability durability);
  void ReleaseWorkers(const std::string& run_id);
  // The run lost `worker` (`reason`): restart, fail or stop it. Saves.
  absl::Status LoseWorker(RunEntry& entry, const v1::RunWorker& worker, const std::string& reason,
                          std::vector<v1::RunEvent>& events);
  // Ends the run in a final state, releasing its workers. Saves.
  absl::Status Finish(RunEntry& entry, v1::RunState state, std::string reason,
                      std::vector<v1::RunEvent>& events);
  // ReportProgress's parts: rank 0's step, tokens and metrics (a PROGRESS event every 10% of
  // the tokens); an activation server's shard progress; an evaluation; an outcome (FINISHED, STOPPED, FAILED),
  // which returns the response when it ended the report.
  void RecordTrainingProgress(v1::Run& run, const v1::ReportProgressRequest& request,
                              std::vector<v1::RunEvent>& events);
  static void RecordShardProgress(v1::Run& run, int32_t shard,
                                  const v1::ReportProgressRequest& request);
  // Rank 0's evaluation (EVAL_COMPLETED or EVAL_FAILED; a success becomes latest_eval).
  void RecordEval(v1::Run& run, const v1::RunWorker& self, const v1::EvalReport& eval,
                  std::vector<v1::RunEvent>& events);
  // CommitUpload of feature dashboards: stores them and the run's features_step/bytes.
  absl::StatusOr<v1::CheckpointManifest> CommitFeatures(CheckpointUpload& upload,
                                                        v1::CheckpointManifest manifest);
  absl::StatusOr<std::optional<v1::ReportProgressResponse>> ApplyOutcome(
      RunEntry& entry, const v1::RunWorker& self, bool is_rank0,
      const v1::ReportProgressRequest& request, std::vector<v1::RunEvent>& events);
  void Schedule();
  // ResourceExhausted when the run's memory estimate fits fewer registered trainers than it
  // needs (only when at least that many trainers reported their memory); OK otherwise.
  absl::Status CheckTrainerMemory(const v1::Run& run) const;
  absl::Status StartGeneration(RunEntry& entry, const Placement& placement);
  v1::Assignment BuildAssignment(const v1::Run& run, const WorkerEntry& worker) const;
  void UpdateCountMetrics();
  absl::Time Now() const { return options_.now(); }

  const std::unique_ptr<RunStore> store_;
  const ControllerOptions options_;
  const std::unique_ptr<ControllerMetrics> metrics_;
  // The controller's own secret (kept in the store); each generation's rendezvous key is
  // HMAC-SHA256(secret, "rendezvous|RUN_ID|GENERATION"). Set once in Open.
  std::string rendezvous_secret_;

  mutable std::mutex mutex_;  // Guards everything below.
  mutable std::condition_variable events_changed_;
  std::map<std::string, RunEntry> runs_;
  std::map<std::string, WorkerEntry> workers_;
  uint64_t next_submit_order_ = 1;
  uint64_t next_worker_order_ = 1;
};

// A checkpoint being received. Owned by the service handler that receives it.
class Controller::CheckpointUpload {
 public:
  const v1::UploadHeader& header() const { return header_; }
  int32_t chunk_count() const { return static_cast<int32_t>(digests_.size()); }

 private:
  friend class Controller;
  CheckpointUpload(v1::UploadHeader header, std::unique_ptr<RunStore::Upload> staged,
                   absl::Time started)
      : header_(std::move(header)), staged_(std::move(staged)), started_(started) {}

  const v1::UploadHeader header_;
  const std::unique_ptr<RunStore::Upload> staged_;
  const absl::Time started_;
  rpc::Sha256 whole_;
  std::vector<v1::ChunkDigest> digests_;
  int64_t bytes_ = 0;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_H_
