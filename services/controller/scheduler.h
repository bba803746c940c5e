// Gang scheduling: which idle workers the queued runs get. Pure functions over values, so the
// policy is tested without a controller.
//
// Policy: runs are placed in queue order (submission order), each on exactly its
// activation_servers + trainers idle workers at once, or not at all. The first run that does not
// fit blocks those behind it (strict FIFO), so a large run is never starved by small ones.
// Within a run, a slot (a shard or a rank) goes back to the worker that held it in the previous
// generation when that worker is idle; the other slots take idle workers in registration order.
// A trainer that reported its memory only takes runs whose per-trainer estimate fits it (a
// worker or run without a figure is not checked).
#ifndef SAE_SERVICES_CONTROLLER_SCHEDULER_H_
#define SAE_SERVICES_CONTROLLER_SCHEDULER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sae/v1/common.pb.h"

namespace sae::controller {

struct IdleWorker {
  std::string worker_id;
  v1::WorkerRole role = v1::WORKER_ROLE_UNSPECIFIED;
  int64_t memory_bytes = 0;  // what a run may use there (trainers); 0: not reported
};

// What one run needs.
struct GangRequest {
  std::string run_id;
  int activation_servers = 0;
  int trainers = 0;
  // What each trainer will hold (Run.memory_estimate_bytes); 0: unknown.
  int64_t trainer_memory_bytes = 0;
  // The worker that held each shard / rank in the previous generation ("" for none); shorter
  // than the gang or empty when there is no previous generation.
  std::vector<std::string> previous_activation_servers;
  std::vector<std::string> previous_trainers;
};

// Worker ids by slot: activation_servers[i] serves shard i, trainers[r] is rank r.
struct Placement {
  std::string run_id;
  std::vector<std::string> activation_servers;
  std::vector<std::string> trainers;
};

// The runs of `queue` (in order) that start now, each with its workers, taken from `idle` (in
// registration order). Stops at the first run that does not fit.
std::vector<Placement> PlanSchedule(const std::vector<GangRequest>& queue,
                                    const std::vector<IdleWorker>& idle);

// Why `request` does not fit on `idle`, for the run's message, e.g.
// "waiting for workers: 2 trainers needed, 1 idle", or "2 trainers with 3.1 GiB for the run
// needed, 1 of 2 idle has it". "" when it fits.
std::string WaitingReason(const GangRequest& request, const std::vector<IdleWorker>& idle);

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_SCHEDULER_H_
