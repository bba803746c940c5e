#include "services/controller/scheduler.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/controller/controller_internal.h"

namespace sae::controller {
namespace {

using internal::HumanBytes;

// Whether `worker` is free for a slot of `role` needing `memory` bytes (0: any).
bool Usable(const IdleWorker& worker, v1::WorkerRole role, int64_t memory) {
  return !worker.worker_id.empty() && worker.role == role &&
         (memory <= 0 || worker.memory_bytes <= 0 || worker.memory_bytes >= memory);
}

// Fills `count` slots of `role` from `pool` (entries are cleared as they are taken), preferring
// each slot's previous holder. std::nullopt when the pool has too few.
std::optional<std::vector<std::string>> FillSlots(v1::WorkerRole role, int count, int64_t memory,
                                                  const std::vector<std::string>& previous,
                                                  std::vector<IdleWorker>& pool) {
  std::vector<std::string> slots(static_cast<size_t>(count));
  auto take = [&](const std::string& id) {
    for (IdleWorker& worker : pool) {
      if (Usable(worker, role, memory) && worker.worker_id == id) {
        worker.worker_id.clear();
        return true;
      }
    }
    return false;
  };
  for (int i = 0; i < count && i < static_cast<int>(previous.size()); ++i) {
    if (!previous[static_cast<size_t>(i)].empty() && take(previous[static_cast<size_t>(i)])) {
      slots[static_cast<size_t>(i)] = previous[static_cast<size_t>(i)];
    }
  }
  for (std::string& slot : slots) {
    if (!slot.empty()) continue;
    for (IdleWorker& worker : pool) {
      if (Usable(worker, role, memory)) {
        slot = worker.worker_id;
        worker.worker_id.clear();
        break;
      }
    }
    if (slot.empty()) return std::nullopt;
  }
  return slots;
}

int CountRole(const std::vector<IdleWorker>& idle, v1::WorkerRole role, int64_t memory = 0) {
  return static_cast<int>(std::count_if(idle.begin(), idle.end(), [&](const IdleWorker& w) {
    return Usable(w, role, memory);
  }));
}

}  // namespace

std::vector<Placement> PlanSchedule(const std::vector<GangRequest>& queue,
                                    const std::vector<IdleWorker>& idle) {
  std::vector<Placement> placements;
  std::vector<IdleWorker> pool = idle;
  for (const GangRequest& request : queue) {
    std::vector<IdleWorker> trial = pool;
    auto servers = FillSlots(v1::WORKER_ROLE_ACTIVATION_SERVER, request.activation_servers, 0,
                             request.previous_activation_servers, trial);
    if (!servers) break;
    auto trainers = FillSlots(v1::WORKER_ROLE_TRAINER, request.trainers,
                              request.trainer_memory_bytes, request.previous_trainers, trial);
    if (!trainers) break;
    pool = std::move(trial);
    placements.push_back(Placement{request.run_id, std::move(*servers), std::move(*trainers)});
  }
  return placements;
}

std::string WaitingReason(const GangRequest& request, const std::vector<IdleWorker>& idle) {
  std::vector<std::string> missing;
  int servers = CountRole(idle, v1::WORKER_ROLE_ACTIVATION_SERVER);
  int trainers = CountRole(idle, v1::WORKER_ROLE_TRAINER);
  int fitting = CountRole(idle, v1::WORKER_ROLE_TRAINER, request.trainer_memory_bytes);
  if (servers < request.activation_servers) {
    missing.push_back(absl::StrCat(request.activation_servers, " activation server",
                                   request.activation_servers == 1 ? "" : "s", " needed, ", servers,
                                   " idle"));
  }
  if (trainers < request.trainers) {
    missing.push_back(absl::StrCat(request.trainers, " trainer", request.trainers == 1 ? "" : "s",
                                   " needed, ", trainers, " idle"));
  } else if (fitting < request.trainers) {
    missing.push_back(absl::StrCat(request.trainers, " trainer", request.trainers == 1 ? "" : "s",
                                   " with ", HumanBytes(request.trainer_memory_bytes),
                                   " for the run needed, ", fitting, " of ", trainers,
                                   " idle ha", fitting == 1 ? "s" : "ve", " it"));
  }
  if (missing.empty()) return "";
  return absl::StrCat("waiting for workers: ", absl::StrJoin(missing, "; "));
}

}  // namespace sae::controller
