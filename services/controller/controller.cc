#include "services/controller/controller.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/config/run_config.h"
#include "core/util/status.h"

namespace sae::controller {
namespace {

using client::IsFinalState;
using client::RoleName;
using client::RunStateName;

// Events WatchRun reads from the store per batch.
constexpr size_t kEventBatch = 256;
// Progress of a run is written to the store at most this often (buffered).
constexpr absl::Duration kProgressWriteInterval = absl::Seconds(1);

int64_t UnixMillis(absl::Time time) { return absl::ToUnixMillis(time); }

std::string RandomSuffix(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string suffix;
  for (size_t i = 0; i < length; ++i) suffix.push_back(kAlphabet[pick(engine)]);
  return suffix;
}

// A run name usable in ids and metric labels: lower-case letters, digits and '-', at most 40.
std::string SanitizeName(absl::string_view name) {
  std::string out;
  for (char c : name) {
    char lower = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (absl::ascii_isalnum(static_cast<unsigned char>(lower))) {
      out.push_back(lower);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
    if (out.size() == 40) break;
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

std::string HumanBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1 << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  if (bytes < (1 << 30)) return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

std::string SlotName(v1::WorkerRole role, int32_t rank) {
  return role == v1::WORKER_ROLE_TRAINER ? absl::StrCat("trainer rank ", rank)
                                         : absl::StrCat("activation server shard ", rank);
}

// "trainer rank 1 (trainer-k3x9qz at 127.0.0.1:7101)".
std::string WorkerLabel(const v1::RunWorker& worker) {
  return absl::StrCat(SlotName(worker.role(), worker.rank()), " (", worker.worker_id(), " at ",
                      worker.address(), ")");
}

v1::RunWorker RunWorkerOf(const v1::Worker& worker) {
  v1::RunWorker out;
  out.set_worker_id(worker.worker_id());
  out.set_role(worker.role());
  out.set_rank(worker.rank());
  out.set_address(worker.address());
  out.set_hostname(worker.hostname());
  return out;
}

}  // namespace

// ---- Opening and recovery ----

absl::StatusOr<std::unique_ptr<Controller>> Controller::Open(std::unique_ptr<RunStore> store,
                                                             const ControllerOptions& options,
                                                             metrics::Registry* registry) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ControllerMetrics> metrics,
                       ControllerMetrics::Create(registry));
  std::unique_ptr<Controller> controller(
      new Controller(std::move(store), options, std::move(metrics)));
  {
    std::lock_guard<std::mutex> lock(controller->mutex_);
    SAE_RETURN_IF_ERROR(controller->Recover());
    controller->UpdateCountMetrics();
  }
  return controller;
}

Controller::Controller(std::unique_ptr<RunStore> store, ControllerOptions options,
                       std::unique_ptr<ControllerMetrics> metrics)
    : store_(std::move(store)), options_(std::move(options)), metrics_(std::move(metrics)) {}

Controller::~Controller() = default;

absl::Status Controller::Recover() {
  SAE_ASSIGN_OR_RETURN(std::vector<v1::Run> runs, store_->LoadRuns());
  absl::Time now = Now();
  for (v1::Run& run : runs) {
    next_submit_order_ = std::max(next_submit_order_, run.submit_order() + 1);
    if (run.state() == v1::RUN_STATE_RUNNING) {
      // The gang keeps working through a controller restart: its workers heartbeat again under
      // the same ids, or their leases expire as usual.
      for (const v1::RunWorker& member : run.workers()) {
        WorkerEntry& worker = workers_[member.worker_id()];
        worker.info.set_worker_id(member.worker_id());
        worker.info.set_role(member.role());
        worker.info.set_address(member.address());
        worker.info.set_hostname(member.hostname());
        worker.info.set_run_id(run.run_id());
        worker.info.set_generation(run.generation());
        worker.info.set_rank(member.rank());
        worker.info.set_register_time_unix_ms(UnixMillis(now));
        worker.lease_deadline = now + options_.lease;
        worker.order = next_worker_order_++;
      }
    }
    if (!IsFinalState(run.state())) metrics_->RecordProgress(run);
    std::string id = run.run_id();
    runs_[id].run = std::move(run);
  }
  return absl::OkStatus();
}

// ---- Helpers (mutex_ held) ----

Controller::RunEntry* Controller::FindRun(const std::string& run_id) {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

const Controller::RunEntry* Controller::FindRun(const std::string& run_id) const {
  auto it = runs_.find(run_id);
  return it == runs_.end() ? nullptr : &it->second;
}

v1::RunEvent& Controller::AddEvent(v1::Run& run, v1::RunEvent::Type type, std::string message,
                                   std::vector<v1::RunEvent>& events) {
  run.set_last_event_sequence(run.last_event_sequence() + 1);
  v1::RunEvent& event = events.emplace_back();
  event.set_run_id(run.run_id());
  event.set_sequence(run.last_event_sequence());
  event.set_time_unix_ms(UnixMillis(Now()));
  event.set_type(type);
  event.set_generation(run.generation());
  event.set_state(run.state());
  event.set_message(std::move(message));
  return event;
}

void Controller::SetState(v1::Run& run, v1::RunState state, std::string reason,
                          std::vector<v1::RunEvent>& events) {
  int64_t now = UnixMillis(Now());
  run.set_state(state);
  run.set_message(reason);
  if (state == v1::RUN_STATE_RUNNING && run.start_time_unix_ms() == 0) {
    run.set_start_time_unix_ms(now);
  }
  if (IsFinalState(state)) run.set_end_time_unix_ms(now);
  v1::StateTransition* transition = run.add_history();
  transition->set_state(state);
  transition->set_time_unix_ms(now);
  transition->set_generation(run.generation());
  transition->set_reason(reason);
  std::string message = RunStateName(state);
  if (!reason.empty()) absl::StrAppend(&message, ": ", reason);
  AddEvent(run, v1::RunEvent::TYPE_STATE_CHANGED, std::move(message), events);
}

absl::Status Controller::Save(RunEntry& entry, const std::vector<v1::RunEvent>& events,
                              Durability durability) {
  SAE_RETURN_IF_ERROR(store_->WriteRun(entry.run, events, durability));
  entry.last_progress_write = Now();
  if (!events.empty()) events_changed_.notify_all();
  return absl::OkStatus();
}

void Controller::ReleaseWorkers(const std::string& run_id) {
  for (auto& [id, worker] : workers_) {
    if (worker.info.run_id() != run_id) continue;
    worker.info.clear_run_id();
    worker.info.set_generation(0);
    worker.info.set_rank(0);
  }
}

absl::Status Controller::Finish(RunEntry& entry, v1::RunState state, std::string reason,
                                std::vector<v1::RunEvent>& events) {
  v1::Run& run = entry.run;
  ReleaseWorkers(run.run_id());
  SetState(run, state, std::move(reason), events);
  SAE_RETURN_IF_ERROR(Save(entry, events, Durability::kSynced));
  metrics_->ForgetTraining(run.run_id());
  return absl::OkStatus();
}

absl::Status Controller::LoseWorker(RunEntry& entry, const v1::RunWorker& worker,
                                    const std::string& reason, std::vector<v1::RunEvent>& events) {
  v1::Run& run = entry.run;
  std::string what = absl::StrCat(WorkerLabel(worker), " ", reason);
  if (run.stop_requested()) {
    std::string kept =
        run.has_latest_checkpoint_step()
            ? absl::StrCat("the checkpoint at step ", run.latest_checkpoint_step(), " is kept")
            : "it has no checkpoint";
    return Finish(entry, v1::RUN_STATE_STOPPED,
                  absl::StrCat("stopped by the user; ", what, " before the stop completed; ", kept),
                  events);
  }
  if (static_cast<int64_t>(run.generation()) >= run.max_restarts()) {
    return Finish(entry, v1::RUN_STATE_FAILED,
                  absl::StrCat(what, "; no restarts left (max_restarts ", run.max_restarts(), ")"),
                  events);
  }
  ReleaseWorkers(run.run_id());
  std::string resume = "restarting from scratch (no checkpoint yet)";
  if (run.has_latest_checkpoint_step()) {
    resume = absl::StrCat("restarting from the checkpoint at step ", run.latest_checkpoint_step());
  }
  run.set_generation(run.generation() + 1);
  SetState(run, v1::RUN_STATE_RESTARTING,
           absl::StrCat(what, "; ", resume, " (generation ", run.generation(), ", restart ",
                        run.generation(), " of ", run.max_restarts(), ")"),
           events);
  metrics_->RecordRestart(run.run_id());
  return Save(entry, events, Durability::kSynced);
}

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
      idle_ordered.push_back({worker.order, IdleWorker{id, worker.info.role()}});
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
      if (worker.info.run_id().empty()) left.push_back(IdleWorker{id, worker.info.role()});
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

void Controller::UpdateCountMetrics() {
  std::map<v1::RunState, int> runs;
  for (const auto& [id, entry] : runs_) ++runs[entry.run.state()];
  metrics_->SetRunCounts(runs);
  std::map<std::pair<v1::WorkerRole, bool>, int> workers;
  for (const auto& [id, worker] : workers_) {
    ++workers[{worker.info.role(), !worker.info.run_id().empty()}];
  }
  metrics_->SetWorkerCounts(workers);
}

// ---- User verbs ----

absl::StatusOr<v1::Run> Controller::SubmitRun(const v1::SubmitRunRequest& request) {
  SAE_ASSIGN_OR_RETURN(config::RunConfig config,
                       config::ParseRunConfig(request.config_yaml(), "run.yaml"));
  std::string name = SanitizeName(!request.name().empty() ? request.name()
                                  : config.run_name       ? *config.run_name
                                                          : "run");
  config.run_name = name;

  std::lock_guard<std::mutex> lock(mutex_);
  std::string run_id;
  do {
    run_id = absl::StrCat(name, "-", RandomSuffix(5));
  } while (runs_.count(run_id) > 0);
  v1::Run run;
  run.set_run_id(run_id);
  run.set_name(name);
  run.set_config_yaml(config::ToYaml(config));
  run.set_max_restarts(config.max_restarts);
  run.set_total_tokens(config.total_training_tokens);
  run.set_total_steps(config::TotalTrainingSteps(config));
  run.set_activation_servers(static_cast<int32_t>(config.activation_servers));
  run.set_trainers(static_cast<int32_t>(config.trainers));
  run.set_submit_time_unix_ms(UnixMillis(Now()));
  run.set_state(v1::RUN_STATE_PENDING);
  if (request.validate_only()) return run;

  run.set_submit_order(next_submit_order_++);
  std::vector<v1::RunEvent> events;
  SetState(run, v1::RUN_STATE_PENDING,
           absl::StrCat("submitted; needs ", run.activation_servers(), " activation server",
                        run.activation_servers() == 1 ? "" : "s", " and ", run.trainers(),
                        " trainer", run.trainers() == 1 ? "" : "s"),
           events);
  RunEntry& entry = runs_[run_id];
  entry.run = std::move(run);
  absl::Status saved = Save(entry, events, Durability::kSynced);
  if (!saved.ok()) {
    runs_.erase(run_id);
    return saved;
  }
  Schedule();
  return entry.run;
}

absl::StatusOr<v1::Run> Controller::GetRun(const std::string& run_id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const RunEntry* entry = FindRun(run_id);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
  return entry->run;
}

std::vector<v1::Run> Controller::ListRuns(const v1::ListRunsRequest& request) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<v1::Run> runs;
  for (const auto& [id, entry] : runs_) {
    bool wanted = request.states().empty() ||
                  std::find(request.states().begin(), request.states().end(), entry.run.state()) !=
                      request.states().end();
    if (wanted) runs.push_back(entry.run);
  }
  std::sort(runs.begin(), runs.end(),
            [](const v1::Run& a, const v1::Run& b) { return a.submit_order() < b.submit_order(); });
  return runs;
}

absl::StatusOr<v1::Run> Controller::StopRun(const v1::StopRunRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  RunEntry* entry = FindRun(request.run_id());
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrCat("run ", request.run_id(), " not found"));
  }
  v1::Run& run = entry->run;
  if (IsFinalState(run.state()) || run.stop_requested()) return run;
  std::string who = request.reason().empty() ? "stopped by the user" : request.reason();
  std::vector<v1::RunEvent> events;
  run.set_stop_requested(true);
  run.set_stop_request_time_unix_ms(UnixMillis(Now()));
  if (run.state() != v1::RUN_STATE_RUNNING) {
    std::string kept =
        run.has_latest_checkpoint_step()
            ? absl::StrCat("; the checkpoint at step ", run.latest_checkpoint_step(), " is kept")
            : "";
    SAE_RETURN_IF_ERROR(Finish(*entry, v1::RUN_STATE_STOPPED,
                               absl::StrCat(who, " while ", RunStateName(run.state()), kept),
                               events));
    Schedule();
    return run;
  }
  AddEvent(run, v1::RunEvent::TYPE_STOP_REQUESTED,
           absl::StrCat(who, ": the trainers checkpoint at the next step boundary and stop"),
           events);
  SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kSynced));
  return run;
}

absl::Status Controller::DeleteRun(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  RunEntry* entry = FindRun(run_id);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
  if (!IsFinalState(entry->run.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " is ", RunStateName(entry->run.state()),
                     "; stop it first (saectl stop ", run_id, ")"));
  }
  SAE_RETURN_IF_ERROR(store_->DeleteRun(run_id));
  runs_.erase(run_id);
  metrics_->ForgetRun(run_id);
  UpdateCountMetrics();
  events_changed_.notify_all();
  return absl::OkStatus();
}

std::vector<v1::Worker> Controller::ListWorkers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<uint64_t, v1::Worker>> ordered;
  for (const auto& [id, worker] : workers_) ordered.push_back({worker.order, worker.info});
  std::sort(ordered.begin(), ordered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<v1::Worker> workers;
  for (auto& [order, info] : ordered) workers.push_back(std::move(info));
  return workers;
}

absl::StatusOr<std::vector<v1::RunEvent>> Controller::ReadEvents(const std::string& run_id,
                                                                 uint64_t after_sequence,
                                                                 size_t max_events) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (FindRun(run_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
    }
  }
  return store_->ReadEvents(run_id, after_sequence, std::min(max_events, kEventBatch));
}

Controller::WatchOutcome Controller::WaitForEvents(const std::string& run_id,
                                                   uint64_t after_sequence,
                                                   absl::Time deadline) const {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    const RunEntry* entry = FindRun(run_id);
    if (entry == nullptr) return WatchOutcome::kGone;
    if (entry->run.last_event_sequence() > after_sequence) return WatchOutcome::kEvents;
    if (IsFinalState(entry->run.state())) return WatchOutcome::kFinished;
    if (absl::Now() >= deadline) return WatchOutcome::kTimeout;
    events_changed_.wait_until(lock, absl::ToChronoTime(deadline));
  }
}

absl::StatusOr<std::vector<v1::CheckpointManifest>> Controller::ListCheckpoints(
    const std::string& run_id) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (FindRun(run_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
    }
  }
  return store_->ListCheckpoints(run_id);
}

absl::StatusOr<v1::CheckpointManifest> Controller::FindCheckpoint(
    const std::string& run_id, std::optional<int64_t> step) const {
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> manifests, ListCheckpoints(run_id));
  if (manifests.empty()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no checkpoint"));
  }
  if (!step) return manifests.back();
  for (const v1::CheckpointManifest& manifest : manifests) {
    if (manifest.step() == *step) return manifest;
  }
  return absl::NotFoundError(absl::StrCat("run ", run_id, " has no checkpoint at step ", *step,
                                          " (saectl checkpoints ", run_id, " lists them)"));
}

absl::StatusOr<std::string> Controller::ReadChunk(const v1::CheckpointManifest& manifest,
                                                  int32_t index) const {
  return store_->ReadChunk(manifest, index);
}

// ---- Worker verbs ----

absl::StatusOr<v1::RegisterWorkerResponse> Controller::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  if (request.role() != v1::WORKER_ROLE_ACTIVATION_SERVER &&
      request.role() != v1::WORKER_ROLE_TRAINER) {
    return absl::InvalidArgumentError("RegisterWorker: role must be activation server or trainer");
  }
  if (request.address().empty()) {
    return absl::InvalidArgumentError("RegisterWorker: address (host:port) is required");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::string prefix =
      request.role() == v1::WORKER_ROLE_TRAINER ? "trainer-" : "activation-server-";
  std::string worker_id;
  do {
    worker_id = absl::StrCat(prefix, RandomSuffix(6));
  } while (workers_.count(worker_id) > 0);
  WorkerEntry& worker = workers_[worker_id];
  absl::Time now = Now();
  worker.info.set_worker_id(worker_id);
  worker.info.set_role(request.role());
  worker.info.set_address(request.address());
  worker.info.set_hostname(request.hostname());
  worker.info.set_pid(request.pid());
  worker.info.set_register_time_unix_ms(UnixMillis(now));
  worker.info.set_last_heartbeat_unix_ms(UnixMillis(now));
  worker.lease_deadline = now + options_.lease;
  worker.order = next_worker_order_++;
  Schedule();

  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker_id);
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.lease / 3));
  return response;
}

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown worker ", request.worker_id(),
                                            " (its lease expired?): register again"));
  }
  WorkerEntry& worker = it->second;
  absl::Time now = Now();
  worker.lease_deadline = now + options_.lease;
  worker.info.set_last_heartbeat_unix_ms(UnixMillis(now));

  v1::HeartbeatResponse response;
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.lease / 3));
  const RunEntry* entry = FindRun(worker.info.run_id());
  if (entry != nullptr && entry->run.state() == v1::RUN_STATE_RUNNING &&
      entry->run.generation() == worker.info.generation()) {
    *response.mutable_assignment() = BuildAssignment(entry->run, worker);
    response.set_stop_requested(entry->run.stop_requested());
  }
  return response;
}

absl::StatusOr<v1::ReportProgressResponse> Controller::ReportProgress(
    const v1::ReportProgressRequest& request) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("unknown worker ", request.worker_id(),
                                            " (its lease expired?): register again"));
  }
  WorkerEntry& worker = it->second;
  worker.lease_deadline = Now() + options_.lease;
  worker.info.set_last_heartbeat_unix_ms(UnixMillis(Now()));
  RunEntry* entry = FindRun(request.run_id());
  if (entry == nullptr || worker.info.run_id() != request.run_id() ||
      worker.info.generation() != request.generation() ||
      entry->run.state() != v1::RUN_STATE_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", request.worker_id(), " is not assigned to run ", request.run_id(),
                     " generation ", request.generation(), " any more"));
  }
  v1::Run& run = entry->run;
  v1::RunWorker self = RunWorkerOf(worker.info);
  std::vector<v1::RunEvent> events;
  bool is_trainer = worker.info.role() == v1::WORKER_ROLE_TRAINER;
  bool is_rank0 = is_trainer && worker.info.rank() == 0;

  if (is_rank0 && (request.step() > 0 || request.tokens() > 0 || request.has_metrics())) {
    int64_t total = std::max<int64_t>(run.total_tokens(), 1);
    int64_t before = run.tokens() * 10 / total;
    run.set_step(request.step());
    run.set_tokens(request.tokens());
    if (request.has_metrics()) *run.mutable_metrics() = request.metrics();
    int64_t after = std::min<int64_t>(request.tokens() * 10 / total, 10);
    if (after > before && after > 0) {
      v1::RunEvent& event = AddEvent(
          run, v1::RunEvent::TYPE_PROGRESS,
          absl::StrFormat("%d%% of the tokens: step %d of %d, %d tokens; loss %.4g, L0 %.3g, "
                          "explained variance %.3f",
                          after * 10, request.step(), run.total_steps(), request.tokens(),
                          request.metrics().overall_loss(), request.metrics().l0(),
                          request.metrics().explained_variance()),
          events);
      event.set_step(request.step());
      event.set_tokens(request.tokens());
    }
  }
  if (is_trainer && request.tokens_skipped() > 0) {
    run.set_tokens_skipped(run.tokens_skipped() + request.tokens_skipped());
    v1::RunEvent& event = AddEvent(
        run, v1::RunEvent::TYPE_TOKENS_SKIPPED,
        absl::StrCat(request.tokens_skipped(), " tokens skipped by the restart to generation ",
                     run.generation(), " (trained after the checkpoint, in flight or buffered)"),
        events);
    event.set_tokens(request.tokens_skipped());
    *event.mutable_worker() = self;
  }
  if (!is_trainer) {
    int32_t shard = worker.info.rank();
    while (run.shards_size() <= shard) {
      v1::ShardProgress* added = run.add_shards();
      added->set_shard_index(run.shards_size() - 1);
    }
    v1::ShardProgress& progress = *run.mutable_shards(shard);
    if (!request.shard_cursor().empty()) progress.set_cursor(request.shard_cursor());
    progress.set_tokens_generated(progress.tokens_generated_before() + request.tokens_generated());
    int64_t generated = 0;
    for (const v1::ShardProgress& s : run.shards()) generated += s.tokens_generated();
    run.set_tokens_generated(generated);
  }
  metrics_->RecordProgress(run);

  switch (request.outcome()) {
    case v1::ReportProgressRequest::OUTCOME_FINISHED: {
      if (!is_rank0) break;
      auto manifests = store_->ListCheckpoints(run.run_id());
      SAE_RETURN_IF_ERROR(manifests.status());
      bool uploaded = std::any_of(manifests->begin(), manifests->end(), [&](const auto& m) {
        return m.step() == request.checkpoint_step();
      });
      if (!uploaded) {
        return absl::FailedPreconditionError(
            absl::StrCat("run ", run.run_id(), " has no checkpoint at step ",
                         request.checkpoint_step(), ": upload the final SAE before finishing"));
      }
      run.set_final_checkpoint_step(request.checkpoint_step());
      SAE_RETURN_IF_ERROR(Finish(*entry, v1::RUN_STATE_SUCCEEDED,
                                 absl::StrCat("trained ", run.tokens(), " tokens in ", run.step(),
                                              " steps; the final SAE is the checkpoint at step ",
                                              request.checkpoint_step()),
                                 events));
      Schedule();
      return v1::ReportProgressResponse();
    }
    case v1::ReportProgressRequest::OUTCOME_STOPPED: {
      if (!is_rank0) break;
      SAE_RETURN_IF_ERROR(
          Finish(*entry, v1::RUN_STATE_STOPPED,
                 absl::StrCat("stopped by the user at step ", request.checkpoint_step(),
                              "; the checkpoint at step ", request.checkpoint_step(), " is kept"),
                 events));
      Schedule();
      v1::ReportProgressResponse response;
      response.set_stop_requested(true);
      return response;
    }
    case v1::ReportProgressRequest::OUTCOME_FAILED: {
      std::string error = request.error().empty() ? "no reason given" : request.error();
      v1::RunEvent& event = AddEvent(run, v1::RunEvent::TYPE_WORKER_ERROR,
                                     absl::StrCat(WorkerLabel(self), " failed: ", error), events);
      *event.mutable_worker() = self;
      if (request.fatal()) {
        SAE_RETURN_IF_ERROR(Finish(*entry, v1::RUN_STATE_FAILED,
                                   absl::StrCat(WorkerLabel(self), " failed: ", error), events));
      } else {
        SAE_RETURN_IF_ERROR(LoseWorker(*entry, self, absl::StrCat("failed: ", error), events));
      }
      Schedule();
      return v1::ReportProgressResponse();
    }
    default:
      break;
  }
  if (!events.empty()) {
    SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kSynced));
  } else if (Now() - entry->last_progress_write >= kProgressWriteInterval) {
    SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kBuffered));
  }
  v1::ReportProgressResponse response;
  response.set_stop_requested(run.stop_requested());
  return response;
}

// ---- Checkpoint uploads ----

absl::StatusOr<std::unique_ptr<Controller::CheckpointUpload>> Controller::BeginUpload(
    const v1::UploadHeader& header) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = workers_.find(header.worker_id());
    if (it == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("unknown worker ", header.worker_id()));
    }
    const WorkerEntry& worker = it->second;
    const RunEntry* entry = FindRun(header.run_id());
    if (entry == nullptr || worker.info.run_id() != header.run_id() ||
        worker.info.generation() != header.generation() ||
        entry->run.state() != v1::RUN_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", header.worker_id(), " is not assigned to run ", header.run_id(),
                       " generation ", header.generation(), " any more"));
    }
    if (worker.info.role() != v1::WORKER_ROLE_TRAINER) {
      return absl::PermissionDeniedError("only trainers upload checkpoints");
    }
    if (header.step() < 0 || header.tokens() < 0) {
      return absl::InvalidArgumentError("UploadCheckpoint: negative step or tokens");
    }
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<RunStore::Upload> staged,
                       store_->BeginUpload(header.run_id(), header.step()));
  return std::unique_ptr<CheckpointUpload>(new CheckpointUpload(header, std::move(staged), Now()));
}

absl::Status Controller::AddChunk(CheckpointUpload& upload, const v1::CheckpointChunk& chunk) {
  if (chunk.index() != upload.chunk_count()) {
    return absl::InvalidArgumentError(absl::StrCat("UploadCheckpoint: chunk ", chunk.index(),
                                                   " arrived where chunk ", upload.chunk_count(),
                                                   " was expected"));
  }
  if (static_cast<int64_t>(chunk.data().size()) > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("UploadCheckpoint: chunk ", chunk.index(), " is larger than 16 MiB"));
  }
  std::string digest = rpc::Sha256::Of(chunk.data());
  if (!chunk.sha256().empty() && chunk.sha256() != digest) {
    return absl::DataLossError(
        absl::StrCat("UploadCheckpoint: chunk ", chunk.index(), " does not match its SHA-256"));
  }
  SAE_RETURN_IF_ERROR(upload.staged_->AddChunk(chunk.data()));
  upload.whole_.Update(chunk.data());
  v1::ChunkDigest& entry = upload.digests_.emplace_back();
  entry.set_size(static_cast<int64_t>(chunk.data().size()));
  entry.set_sha256(std::move(digest));
  upload.bytes_ += static_cast<int64_t>(chunk.data().size());
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckpointManifest> Controller::CommitUpload(CheckpointUpload& upload,
                                                                const v1::UploadCommit& commit) {
  if (commit.chunk_count() != upload.chunk_count() || commit.total_bytes() != upload.bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("UploadCheckpoint: the commit announces ", commit.chunk_count(),
                     " chunks and ", commit.total_bytes(), " bytes; ", upload.chunk_count(),
                     " chunks and ", upload.bytes_, " bytes arrived"));
  }
  if (commit.sha256() != upload.whole_.Finish()) {
    return absl::DataLossError("UploadCheckpoint: the archive does not match its SHA-256");
  }
  const v1::UploadHeader& header = upload.header_;
  v1::CheckpointManifest manifest;
  manifest.set_tokens(header.tokens());
  manifest.set_generation(header.generation());
  manifest.set_final(header.final());
  manifest.set_total_bytes(upload.bytes_);
  manifest.set_chunk_count(upload.chunk_count());
  for (const v1::ChunkDigest& digest : upload.digests_) *manifest.add_chunks() = digest;
  manifest.set_sha256(commit.sha256());
  manifest.set_created_unix_ms(UnixMillis(Now()));

  std::lock_guard<std::mutex> lock(mutex_);
  RunEntry* entry = FindRun(header.run_id());
  if (entry == nullptr || entry->run.generation() != header.generation() ||
      entry->run.state() != v1::RUN_STATE_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", header.run_id(), " moved on from generation ", header.generation(),
                     " during the upload; the checkpoint at step ", header.step(), " is dropped"));
  }
  v1::Run updated = entry->run;
  std::vector<v1::RunEvent> events;
  updated.set_latest_checkpoint_step(header.step());
  v1::RunEvent& event = AddEvent(
      updated, v1::RunEvent::TYPE_CHECKPOINT_COMMITTED,
      absl::StrCat(header.final() ? "final SAE" : "checkpoint", " at step ", header.step(), " (",
                   header.tokens(), " tokens, ", HumanBytes(upload.bytes_), ") committed"),
      events);
  event.set_step(header.step());
  event.set_tokens(header.tokens());
  event.set_bytes(upload.bytes_);
  // The bytes kept after retention: the new checkpoint plus the newest retention - 1 others.
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> before,
                       store_->ListCheckpoints(header.run_id()));
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> deleted,
                       store_->CommitUpload(*upload.staged_, manifest, updated, events,
                                            options_.checkpoint_retention));
  int64_t stored = upload.bytes_;
  for (const v1::CheckpointManifest& old : before) {
    bool gone = std::any_of(deleted.begin(), deleted.end(), [&](const auto& d) {
      return d.step() == old.step() && d.upload_id() == old.upload_id();
    });
    if (!gone) stored += old.total_bytes();
  }
  updated.set_checkpoint_bytes(stored);
  entry->run = std::move(updated);
  events_changed_.notify_all();
  // The byte count is the one change since the commit's batch; should this write fail, the
  // next one carries it.
  (void)Save(*entry, {}, Durability::kBuffered);
  metrics_->RecordCheckpoint(header.run_id(), upload.bytes_,
                             absl::ToDoubleSeconds(Now() - upload.started_), stored);
  manifest.set_run_id(header.run_id());
  manifest.set_step(header.step());
  manifest.set_upload_id(upload.staged_->upload_id());
  return manifest;
}

// ---- Time ----

void Controller::Tick() {
  std::lock_guard<std::mutex> lock(mutex_);
  absl::Time now = Now();
  std::vector<std::string> expired;
  for (const auto& [id, worker] : workers_) {
    if (worker.lease_deadline < now) expired.push_back(id);
  }
  for (const std::string& id : expired) {
    v1::Worker info = workers_[id].info;
    workers_.erase(id);
    RunEntry* entry = FindRun(info.run_id());
    if (entry == nullptr || entry->run.state() != v1::RUN_STATE_RUNNING) continue;
    std::vector<v1::RunEvent> events;
    v1::RunWorker lost = RunWorkerOf(info);
    std::string reason =
        absl::StrCat("lost: no heartbeat for ", absl::FormatDuration(options_.lease));
    v1::RunEvent& event = AddEvent(entry->run, v1::RunEvent::TYPE_WORKER_LOST,
                                   absl::StrCat(WorkerLabel(lost), " ", reason), events);
    *event.mutable_worker() = lost;
    (void)LoseWorker(*entry, lost, reason, events);
  }
  for (auto& [id, entry] : runs_) {
    const v1::Run& run = entry.run;
    if (run.state() != v1::RUN_STATE_RUNNING || !run.stop_requested()) continue;
    absl::Time asked = absl::FromUnixMillis(run.stop_request_time_unix_ms());
    if (now - asked < options_.stop_timeout) continue;
    std::vector<v1::RunEvent> events;
    std::string kept =
        run.has_latest_checkpoint_step()
            ? absl::StrCat("the checkpoint at step ", run.latest_checkpoint_step(), " is kept")
            : "the run has no checkpoint";
    (void)Finish(entry, v1::RUN_STATE_STOPPED,
                 absl::StrCat("stopped by the user; trainer rank 0 did not confirm within ",
                              absl::FormatDuration(options_.stop_timeout), "; ", kept),
                 events);
  }
  Schedule();
}

}  // namespace sae::controller
