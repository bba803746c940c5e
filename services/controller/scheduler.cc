#include "services/controller/scheduler.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sae::controller {
namespace {

// Fills `count` slots of `role` from `pool` (entries are cleared as they are taken), preferring
// each slot's previous holder. std::nullopt when the pool has too few.
std::optional<std::vector<std::string>> FillSlots(v1::WorkerRole role, int count,
                                                  const std::vector<std::string>& previous,
                                                  std::vector<IdleWorker>& pool) {
  std::vector<std::string> slots(static_cast<size_t>(count));
  auto take = [&](const std::string& id) {
    for (IdleWorker& worker : pool) {
      if (!worker.worker_id.empty() && worker.role == role && worker.worker_id == id) {
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
      if (!worker.worker_id.empty() && worker.role == role) {
        slot = worker.worker_id;
        worker.worker_id.clear();
        break;
      }
    }
    if (slot.empty()) return std::nullopt;
  }
  return slots;
}

int CountRole(const std::vector<IdleWorker>& idle, v1::WorkerRole role) {
  return static_cast<int>(std::count_if(idle.begin(), idle.end(), [&](const IdleWorker& w) {
    return !w.worker_id.empty() && w.role == role;
  }));
}

}  // namespace

std::vector<Placement> PlanSchedule(const std::vector<GangRequest>& queue,
                                    const std::vector<IdleWorker>& idle) {
  std::vector<Placement> placements;
  std::vector<IdleWorker> pool = idle;
  for (const GangRequest& request : queue) {
    std::vector<IdleWorker> trial = pool;
    auto servers = FillSlots(v1::WORKER_ROLE_ACTIVATION_SERVER, request.activation_servers,
                             request.previous_activation_servers, trial);
    if (!servers) break;
    auto trainers =
        FillSlots(v1::WORKER_ROLE_TRAINER, request.trainers, request.previous_trainers, trial);
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
  if (servers < request.activation_servers) {
    missing.push_back(absl::StrCat(request.activation_servers, " activation server",
                                   request.activation_servers == 1 ? "" : "s", " needed, ", servers,
                                   " idle"));
  }
  if (trainers < request.trainers) {
    missing.push_back(absl::StrCat(request.trainers, " trainer", request.trainers == 1 ? "" : "s",
                                   " needed, ", trainers, " idle"));
  }
  if (missing.empty()) return "";
  return absl::StrCat("waiting for workers: ", absl::StrJoin(missing, "; "));
}

}  // namespace sae::controller
