// Controller: gang scheduling of pending runs onto idle workers, and the assignments that
// start a generation of a run's group.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/util/status.h"
#include "services/common/sha256.h"
#include "services/controller/controller.h"
#include "services/controller/controller_internal.h"

namespace sae::controller {

using internal::RunWorkerOf;
using internal::WorkerLabel;

void Controller::Schedule() {
  std::vector<const RunEntry*> queued;
  for (const auto& [id, entry] : runs_) {
    if (entry.run.state() == v1::RUN_STATE_PENDING ||
        entry.run.state() == v1::RUN_STATE_RESTARTING) {
      queued.push_back(&entry);
    }
  }
  std::sort(queued.begin(), queued.end(), [](const RunEntry* a, const RunEntry* b) {
    return a->run.submit_order() < b->run.submit_order();
  });
  std::vector<GangRequest> queue;
  for (const RunEntry* entry : queued) {
    GangRequest& request = queue.emplace_back();
    request.run_id = entry->run.run_id();
    request.activation_servers = entry->run.activation_servers();
    request.trainers = entry->run.trainers();
    request.trainer_memory_bytes = entry->run.memory_estimate_bytes();
    for (const v1::RunWorker& member : entry->run.workers()) {
      auto& slots = member.role() == v1::WORKER_ROLE_TRAINER ? request.previous_trainers
                                                             : request.previous_activation_servers;
      if (slots.size() <= static_cast<size_t>(member.rank())) slots.resize(member.rank() + 1);
      slots[static_cast<size_t>(member.rank())] = member.worker_id();
    }
  }
  std::vector<std::pair<uint64_t, IdleWorker>> idle_ordered;
  for (const auto& [id, worker] : workers_) {
    if (worker.info.run_id().empty()) {
      idle_ordered.push_back(
          {worker.order, IdleWorker{id, worker.info.role(), worker.info.memory_bytes()}});
    }
  }
  std::sort(idle_ordered.begin(), idle_ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<IdleWorker> idle;
  for (auto& [order, worker] : idle_ordered) idle.push_back(std::move(worker));

  std::vector<Placement> placements = PlanSchedule(queue, idle);
  for (const Placement& placement : placements) {
    absl::Status started = StartGeneration(runs_[placement.run_id], placement);
    (void)started;  // A failed write leaves the state in memory; the next change retries it.
  }
  // Tell the runs still queued why they wait.
  if (placements.size() < queue.size()) {
    std::vector<IdleWorker> left;
    for (const auto& [id, worker] : workers_) {
      if (worker.info.run_id().empty()) {
        left.push_back(IdleWorker{id, worker.info.role(), worker.info.memory_bytes()});
      }
    }
    const GangRequest& head = queue[placements.size()];
    for (size_t i = placements.size(); i < queue.size(); ++i) {
      v1::Run& run = runs_[queue[i].run_id].run;
      std::string reason = i == placements.size()
                               ? WaitingReason(head, left)
                               : absl::StrCat("waiting behind run ", head.run_id);
      if (run.state() == v1::RUN_STATE_RESTARTING && !run.history().empty()) {
        reason = absl::StrCat(run.history(run.history_size() - 1).reason(), "; ", reason);
      }
      run.set_message(reason);
    }
  }
  UpdateCountMetrics();
}

absl::Status Controller::CheckTrainerMemory(const v1::Run& run) const {
  const int64_t needed = run.memory_estimate_bytes();
  if (needed <= 0) return absl::OkStatus();
  std::vector<const v1::Worker*> reported;
  int fitting = 0;
  for (const auto& [id, worker] : workers_) {
    if (worker.info.role() != v1::WORKER_ROLE_TRAINER) continue;
    if (worker.info.memory_bytes() <= 0 || worker.info.memory_bytes() >= needed) ++fitting;
    if (worker.info.memory_bytes() > 0) reported.push_back(&worker.info);
  }
  // Too few trainers known to judge: the run waits for trainers that can hold it.
  if (fitting >= run.trainers() || static_cast<int>(reported.size()) < run.trainers()) {
    return absl::OkStatus();
  }
  std::sort(reported.begin(), reported.end(), [](const v1::Worker* a, const v1::Worker* b) {
    return a->memory_bytes() > b->memory_bytes();
  });
  std::string offers;
  for (size_t i = 0; i < reported.size() && i < 4; ++i) {
    absl::StrAppend(&offers, i == 0 ? "" : ", ", reported[i]->worker_id(), " ",
                    internal::HumanBytes(reported[i]->memory_bytes()));
  }
  if (reported.size() > 4) absl::StrAppend(&offers, ", ...");
  const int saes = std::max(1, run.saes_size());
  return absl::ResourceExhaustedError(absl::StrCat(
      "the run needs about ", internal::HumanBytes(needed), " on each of its ", run.trainers(),
      " trainer", run.trainers() == 1 ? "" : "s", " (", saes, " SAE", saes == 1 ? "" : "s",
      ": parameters, Adam, gradients and feature state, one step's temporaries and the mixing "
      "buffer; `saectl submit --dry-run` itemises it), but only ", fitting, " of the ",
      reported.size(), " registered trainers can hold it (", offers,
      "). Every trainer holds every SAE of a run: split the sweep into runs of fewer SAEs, lower "
      "expansion_factor/d_sae or train_batch_size, or start trainers with more memory "
      "(sae-trainer --memory-limit)"));
}

absl::Status Controller::StartGeneration(RunEntry& entry, const Placement& placement) {
  v1::Run& run = entry.run;
  std::vector<v1::RunEvent> events;
  run.clear_workers();
  auto assign = [&](const std::string& worker_id, v1::WorkerRole role, int32_t rank) {
    WorkerEntry& worker = workers_[worker_id];
    worker.info.set_run_id(run.run_id());
    worker.info.set_generation(run.generation());
    worker.info.set_rank(rank);
    *run.add_workers() = RunWorkerOf(worker.info);
  };
  for (size_t i = 0; i < placement.activation_servers.size(); ++i) {
    assign(placement.activation_servers[i], v1::WORKER_ROLE_ACTIVATION_SERVER,
           static_cast<int32_t>(i));
  }
  for (size_t i = 0; i < placement.trainers.size(); ++i) {
    assign(placement.trainers[i], v1::WORKER_ROLE_TRAINER, static_cast<int32_t>(i));
  }
  // One progress record per shard; the tokens of earlier generations are carried over.
  while (run.shards_size() < run.activation_servers()) {
    v1::ShardProgress* shard = run.add_shards();
    shard->set_shard_index(run.shards_size() - 1);
  }
  for (v1::ShardProgress& shard : *run.mutable_shards()) {
    shard.set_tokens_generated_before(shard.tokens_generated());
  }
  std::string reason = absl::StrCat(
      "gang of ", placement.activation_servers.size(), " activation server",
      placement.activation_servers.size() == 1 ? "" : "s", " and ", placement.trainers.size(),
      " trainer", placement.trainers.size() == 1 ? "" : "s", " placed");
  if (run.generation() > 0) {
    absl::StrAppend(&reason, "; generation ", run.generation());
    if (run.has_latest_checkpoint_step()) {
      absl::StrAppend(&reason, " resumes from the checkpoint at step ",
                      run.latest_checkpoint_step());
    }
  }
  SetState(run, v1::RUN_STATE_RUNNING, reason, events);
  for (const v1::RunWorker& member : run.workers()) {
    v1::RunEvent& event = AddEvent(
        run, v1::RunEvent::TYPE_WORKER_ASSIGNED,
        absl::StrCat(WorkerLabel(member), " assigned for generation ", run.generation()), events);
    *event.mutable_worker() = member;
  }
  return Save(entry, events, Durability::kSynced);
}

v1::Assignment Controller::BuildAssignment(const v1::Run& run, const WorkerEntry& worker) const {
  v1::Assignment assignment;
  assignment.set_run_id(run.run_id());
  assignment.set_run_name(run.name());
  assignment.set_generation(run.generation());
  assignment.set_role(worker.info.role());
  assignment.set_rank(worker.info.rank());
  assignment.set_config_yaml(run.config_yaml());
  assignment.set_world_size(
      worker.info.role() == v1::WORKER_ROLE_TRAINER ? run.trainers() : run.activation_servers());
  std::vector<std::string> servers(static_cast<size_t>(run.activation_servers()));
  for (const v1::RunWorker& member : run.workers()) {
    if (member.role() == v1::WORKER_ROLE_ACTIVATION_SERVER &&
        member.rank() < static_cast<int32_t>(servers.size())) {
      servers[static_cast<size_t>(member.rank())] = member.address();
    }
    if (member.role() == v1::WORKER_ROLE_TRAINER && member.rank() == 0) {
      assignment.set_rendezvous_address(member.address());
    }
  }
  if (worker.info.role() == v1::WORKER_ROLE_TRAINER) {
    assignment.set_rendezvous_key(absl::BytesToHexString(rpc::HmacSha256(
        rendezvous_secret_, absl::StrCat("rendezvous|", run.run_id(), "|", run.generation()))));
    for (std::string& address : servers) assignment.add_activation_server_addresses(address);
    if (run.has_latest_checkpoint_step()) {
      assignment.set_resume_checkpoint_step(run.latest_checkpoint_step());
    }
  } else {
    assignment.set_shard_index(worker.info.rank());
    assignment.set_shard_count(run.activation_servers());
    if (worker.info.rank() < run.shards_size()) {
      assignment.set_shard_cursor(run.shards(worker.info.rank()).cursor());
    }
  }
  return assignment;
}

}  // namespace sae::controller
