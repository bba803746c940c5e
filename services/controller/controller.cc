// Controller: opening and recovery, run records and events, and the user verbs. Scheduling is
// in controller_scheduling.cc, the worker verbs and leases in controller_workers.cc,
// checkpoints in controller_checkpoints.cc.
#include "services/controller/controller.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/config/memory_estimate.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "core/util/status.h"
#include "services/common/sha256.h"
#include "services/controller/controller_internal.h"

namespace sae::controller {
namespace {

using client::IsFinalState;
using client::RunStateName;
using internal::HumanBytes;
using internal::RandomSuffix;
using internal::RunWorkerOf;
using internal::UnixMillis;
using internal::WorkerLabel;

// Events WatchRun reads from the store per batch.
constexpr size_t kEventBatch = 256;

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

}  // namespace

// ---- Opening and recovery ----

absl::StatusOr<std::unique_ptr<Controller>> Controller::Open(std::unique_ptr<RunStore> store,
                                                             const ControllerOptions& options,
                                                             metrics::Registry* registry) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ControllerMetrics> metrics,
                       ControllerMetrics::Create(registry));
  std::unique_ptr<Controller> controller(
      new Controller(std::move(store), options, std::move(metrics)));
  SAE_ASSIGN_OR_RETURN(controller->rendezvous_secret_,
                       controller->store_->LoadOrStoreSecret("rendezvous", rpc::RandomBytes(32)));
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
  // A committed final SAE means training reached its end: a worker lost after that, before rank
  // 0 reported FINISHED, leaves nothing to redo (and a restart would resume from the final SAE,
  // which holds no trainer state).
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> manifests,
                       store_->ListCheckpoints(run.run_id()));
  for (const v1::CheckpointManifest& manifest : manifests) {
    if (!manifest.final()) continue;
    run.set_final_checkpoint_step(manifest.step());
    run.set_step(manifest.step());
    run.set_tokens(manifest.tokens());
    return Finish(entry, v1::RUN_STATE_SUCCEEDED,
                  absl::StrCat("trained ", manifest.tokens(), " tokens in ", manifest.step(),
                               " steps; the final SAE is the checkpoint at step ", manifest.step(),
                               " (", what, " after it was committed)"),
                  events);
  }
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
  // A run of many SAEs (sweep:, hook_points:) trains them all from one activation stream; the
  // run lists them from the start.
  SAE_ASSIGN_OR_RETURN(std::vector<config::SaeChild> children, config::ExpandSaes(config));
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
  if (config::TrainsManySaes(config)) {
    for (const config::SaeChild& child : children) run.add_saes()->set_name(child.name);
  }
  // What each trainer will hold: saectl's estimate (it reads the model's config.json), else ours
  // when run.yaml gives every SAE's d_in.
  int64_t estimate = std::max<int64_t>(0, request.memory_estimate_bytes());
  const bool dims_known = std::all_of(children.begin(), children.end(), [](const auto& child) {
    return child.config.d_in.has_value() && config::EffectiveDSae(child.config).has_value();
  });
  if (estimate == 0 && dims_known) estimate = config::EstimateMemory(config, children).total();
  run.set_memory_estimate_bytes(estimate);
  SAE_RETURN_IF_ERROR(CheckTrainerMemory(run));
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

}  // namespace sae::controller
