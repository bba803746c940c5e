// sae-trainer --controller ADDR: a trainer that does what the controller assigns, generation
// after generation (docs/operations.md, "Workers under a controller").
//
// The worker registers its --listen address (where it hosts the c10d TCPStore whenever it is
// rank 0 of a group) and follows its assignment (services/common/worker_agent.h):
//
//   - A new assignment (a run, or a new generation of one) starts RunDistributedTraining on a
//     thread of its own with the assignment's rank, world size, rendezvous address (rank 0's
//     registered address) and activation servers, in a private folder under --work-dir. When
//     the assignment names a checkpoint, every rank downloads it and resumes from it, and rank 0
//     reports once how many tokens the rollback skipped: the furthest token count the previous
//     generation reached (the most any rank of the new group trained to in it, learnt with one
//     all-reduce, or what rank 0 last reported to the controller, whichever is further) minus
//     the checkpoint's.
//   - Rank 0 reports progress every wandb_log_frequency steps (without holding up the step),
//     uploads every checkpoint but the last step's (the final SAE replaces it), uploads the final
//     SAE (retrying while the controller is away) and reports OUTCOME_FINISHED.
//   - A stop request: every rank checkpoints at the next step boundary; rank 0 uploads the
//     checkpoint and reports OUTCOME_STOPPED.
//   - A new generation, or no assignment (the run went RESTARTING, or ended): the training is
//     abandoned at once (no checkpoint) and the next one starts when it is assigned.
//   - Errors. A config or data mistake (InvalidArgument, NotFound) is reported FAILED and
//     fatal. A failure before the group formed (rank 0 not listening yet, a stale store) is
//     retried within the same generation after a second. A group that broke afterwards (a peer
//     or a server lost) waits for the controller, which notices the lost worker when its lease
//     expires and starts the next generation; only when none comes within `restart_grace` does
//     the worker report the failure itself (non-fatal: the controller restarts the group).
//
// Termination (SIGTERM): a training in progress checkpoints at the next step boundary (rank 0
// uploads it, so the next generation loses little), then the worker exits; the controller
// restarts the run when the worker's lease expires.
#ifndef SAE_SERVICES_TRAINER_WORKER_MODE_H_
#define SAE_SERVICES_TRAINER_WORKER_MODE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/metrics/registry.h"
#include "services/common/health.h"
#include "services/common/rpc.h"
#include "services/trainer/distributed_training.h"
#include "services/trainer/process_group.h"

namespace sae::trainer {

struct TrainerWorkerOptions {
  // host:port of the controller, and its token and TLS roots.
  std::string controller;
  rpc::ClientSecurity controller_security;
  // Optional: where the worker binds its liveness check (the metrics server's /healthz).
  service::HealthSource* health = nullptr;
  // Required: host:port registered with the controller. As rank 0 of a group the worker hosts
  // the c10d TCPStore on its port (on every interface).
  std::string listen;
  // Required: a folder of this worker's own; each generation trains in
  // WORK_DIR/RUN_ID/gGENERATION (downloaded checkpoint, checkpoints, final SAE), and a run's
  // folder is removed once the run is over for this worker.
  std::string work_dir;
  // The group's settings (bind address, backend, timeouts); rank, world size and rendezvous
  // come from each assignment.
  ProcessGroupOptions group;
  // How this worker reads the activation servers.
  StreamSettings stream;
  // How long a rank whose group broke waits for the controller's next generation before it
  // reports the failure itself. Zero: twice the controller's lease plus 5 s.
  absl::Duration restart_grace = absl::ZeroDuration();
  // Optional: the Prometheus registry of the training and stream series.
  metrics::Registry* metrics = nullptr;
  // The memory a run may use here, reported when registering: the controller gives this worker
  // no run whose estimate is larger (docs/operations.md, "Memory"). 0: not reported.
  int64_t memory_bytes = 0;
};

// Registers with the controller and trains what it assigns until `wait_for_shutdown` (called
// in a loop; it waits at most its argument) returns true. Returns OK after a shutdown;
// InvalidArgument for missing options; Unavailable when the controller cannot be reached at
// start (for a minute).
absl::Status RunTrainerWorker(const TrainerWorkerOptions& options,
                              const std::function<bool(absl::Duration)>& wait_for_shutdown);

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_WORKER_MODE_H_
