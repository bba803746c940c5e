// Controller: the worker verbs (registration, heartbeats, progress and outcomes) and the tick
// that expires leases and stops.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/util/status.h"
#include "services/controller/controller.h"
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

// How often workers heartbeat: a third of the lease, and at least every second so that a new
// assignment reaches them quickly.
absl::Duration HeartbeatInterval(absl::Duration lease) {
  return std::min(lease / 3, absl::Seconds(1));
}

// Progress of a run is written to the store at most this often (buffered).
constexpr absl::Duration kProgressWriteInterval = absl::Seconds(1);

}  // namespace

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
  worker.info.set_memory_bytes(std::max<int64_t>(0, request.memory_bytes()));
  worker.info.set_register_time_unix_ms(UnixMillis(now));
  worker.info.set_last_heartbeat_unix_ms(UnixMillis(now));
  worker.lease_deadline = now + options_.lease;
  worker.order = next_worker_order_++;
  Schedule();

  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker_id);
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(HeartbeatInterval(options_.lease)));
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
  response.set_heartbeat_interval_ms(absl::ToInt64Milliseconds(HeartbeatInterval(options_.lease)));
  const RunEntry* entry = FindRun(worker.info.run_id());
  if (entry != nullptr && entry->run.state() == v1::RUN_STATE_RUNNING &&
      entry->run.generation() == worker.info.generation()) {
    *response.mutable_assignment() = BuildAssignment(entry->run, worker);
    response.set_stop_requested(entry->run.stop_requested());
  }
  return response;
}

void Controller::RecordTrainingProgress(v1::Run& run, const v1::ReportProgressRequest& request,
                                        std::vector<v1::RunEvent>& events) {
  int64_t total = std::max<int64_t>(run.total_tokens(), 1);
  int64_t before = run.tokens() * 10 / total;
  run.set_step(request.step());
  run.set_tokens(request.tokens());
  if (request.has_metrics()) {
    v1::TrainingMetrics metrics = request.metrics();
    // The sparsity summary comes once per feature-sampling window: keep the last one.
    const v1::TrainingMetrics& last = run.metrics();
    if (!metrics.has_mean_log10_feature_sparsity() && last.has_mean_log10_feature_sparsity()) {
      metrics.set_mean_log10_feature_sparsity(last.mean_log10_feature_sparsity());
      metrics.set_features_below_1e5(last.features_below_1e5());
      metrics.set_features_below_1e6(last.features_below_1e6());
      *metrics.mutable_log10_density_histogram() = last.log10_density_histogram();
    }
    *run.mutable_metrics() = std::move(metrics);
  }
  // A run of many SAEs: each SAE's progress, by name (the run lists its SAEs from the submit).
  for (const v1::SaeProgress& reported : request.saes()) {
    for (v1::SaeProgress& sae : *run.mutable_saes()) {
      if (sae.name() != reported.name()) continue;
      v1::TrainingMetrics metrics = reported.metrics();
      const v1::TrainingMetrics& last = sae.metrics();
      if (!metrics.has_mean_log10_feature_sparsity() && last.has_mean_log10_feature_sparsity()) {
        metrics.set_mean_log10_feature_sparsity(last.mean_log10_feature_sparsity());
        metrics.set_features_below_1e5(last.features_below_1e5());
        metrics.set_features_below_1e6(last.features_below_1e6());
        *metrics.mutable_log10_density_histogram() = last.log10_density_histogram();
      }
      sae.set_step(reported.step());
      *sae.mutable_metrics() = std::move(metrics);
    }
  }
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

void Controller::RecordShardProgress(v1::Run& run, int32_t shard,
                                     const v1::ReportProgressRequest& request) {
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

void Controller::RecordEval(v1::Run& run, const v1::RunWorker& self, const v1::EvalReport& eval,
                            std::vector<v1::RunEvent>& events) {
  v1::EvalReport stored = eval;
  stored.set_time_unix_ms(UnixMillis(Now()));
  const std::string what =
      absl::StrCat(eval.final() ? "final evaluation" : "evaluation",
                   eval.sae().empty() ? "" : absl::StrCat(" of SAE ", eval.sae()), " at step ",
                   eval.step());
  const bool ok = eval.error().empty();
  std::string message =
      ok ? absl::StrFormat("%s (%s, %.1f s): CE-loss score %.4g, KL score %.4g, explained "
                           "variance %.3f, L0 %.3g",
                           what, eval.server(), eval.seconds(), eval.ce_loss_score(),
                           eval.kl_div_score(), eval.explained_variance(), eval.l0())
         : absl::StrCat(what, " failed (training goes on): ", eval.error());
  v1::RunEvent& event =
      AddEvent(run, ok ? v1::RunEvent::TYPE_EVAL_COMPLETED : v1::RunEvent::TYPE_EVAL_FAILED,
               std::move(message), events);
  event.set_step(eval.step());
  event.set_tokens(eval.tokens());
  *event.mutable_worker() = self;
  *event.mutable_eval() = stored;
  if (!ok) return;
  // A run of many SAEs keeps each SAE's newest evaluation too: the run's own is whichever SAE
  // was evaluated last.
  for (v1::SaeProgress& sae : *run.mutable_saes()) {
    if (sae.name() == eval.sae()) *sae.mutable_latest_eval() = stored;
  }
  *run.mutable_latest_eval() = std::move(stored);
}

absl::StatusOr<std::optional<v1::ReportProgressResponse>> Controller::ApplyOutcome(
    RunEntry& entry, const v1::RunWorker& self, bool is_rank0,
    const v1::ReportProgressRequest& request, std::vector<v1::RunEvent>& events) {
  v1::Run& run = entry.run;
  switch (request.outcome()) {
    case v1::ReportProgressRequest::OUTCOME_FINISHED: {
      if (!is_rank0) break;
      auto manifests = store_->ListCheckpoints(run.run_id());
      SAE_RETURN_IF_ERROR(manifests.status());
      auto final_sae = std::find_if(manifests->begin(), manifests->end(), [&](const auto& m) {
        return m.step() == request.checkpoint_step();
      });
      if (final_sae == manifests->end()) {
        return absl::FailedPreconditionError(
            absl::StrCat("run ", run.run_id(), " has no checkpoint at step ",
                         request.checkpoint_step(), ": upload the final SAE before finishing"));
      }
      run.set_final_checkpoint_step(request.checkpoint_step());
      // Progress reports sent while the controller was away are lost; the final SAE says where
      // training ended.
      if (final_sae->step() > run.step()) {
        run.set_step(final_sae->step());
        run.set_tokens(final_sae->tokens());
      }
      SAE_RETURN_IF_ERROR(Finish(entry, v1::RUN_STATE_SUCCEEDED,
                                 absl::StrCat("trained ", run.tokens(), " tokens in ", run.step(),
                                              " steps; the final SAE is the checkpoint at step ",
                                              request.checkpoint_step()),
                                 events));
      Schedule();
      return std::optional<v1::ReportProgressResponse>(v1::ReportProgressResponse());
    }
    case v1::ReportProgressRequest::OUTCOME_STOPPED: {
      if (!is_rank0) break;
      SAE_RETURN_IF_ERROR(
          Finish(entry, v1::RUN_STATE_STOPPED,
                 absl::StrCat("stopped by the user at step ", request.checkpoint_step(),
                              "; the checkpoint at step ", request.checkpoint_step(), " is kept"),
                 events));
      Schedule();
      v1::ReportProgressResponse response;
      response.set_stop_requested(true);
      return std::optional<v1::ReportProgressResponse>(response);
    }
    case v1::ReportProgressRequest::OUTCOME_FAILED: {
      std::string error = request.error().empty() ? "no reason given" : request.error();
      v1::RunEvent& event = AddEvent(run, v1::RunEvent::TYPE_WORKER_ERROR,
                                     absl::StrCat(WorkerLabel(self), " failed: ", error), events);
      *event.mutable_worker() = self;
      if (request.fatal()) {
        SAE_RETURN_IF_ERROR(Finish(entry, v1::RUN_STATE_FAILED,
                                   absl::StrCat(WorkerLabel(self), " failed: ", error), events));
      } else {
        SAE_RETURN_IF_ERROR(LoseWorker(entry, self, absl::StrCat("failed: ", error), events));
      }
      Schedule();
      return std::optional<v1::ReportProgressResponse>(v1::ReportProgressResponse());
    }
    default:
      break;
  }
  return std::optional<v1::ReportProgressResponse>();
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

  if (request.has_eval()) {
    if (!is_rank0) {
      return absl::InvalidArgumentError("only trainer rank 0 reports evaluations");
    }
    RecordEval(run, self, request.eval(), events);
    metrics_->RecordProgress(run);
    SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kSynced));
    v1::ReportProgressResponse response;
    response.set_stop_requested(run.stop_requested());
    return response;
  }
  if (is_rank0 && (request.step() > 0 || request.tokens() > 0 || request.has_metrics())) {
    RecordTrainingProgress(run, request, events);
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
  if (!is_trainer) RecordShardProgress(run, worker.info.rank(), request);
  metrics_->RecordProgress(run);
  if (is_rank0 && request.has_metrics() && options_.on_progress) {
    options_.on_progress(run, request, Now());
  }

  SAE_ASSIGN_OR_RETURN(std::optional<v1::ReportProgressResponse> ended,
                       ApplyOutcome(*entry, self, is_rank0, request, events));
  if (ended) return *ended;
  if (!events.empty()) {
    SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kSynced));
  } else if (Now() - entry->last_progress_write >= kProgressWriteInterval) {
    SAE_RETURN_IF_ERROR(Save(*entry, events, Durability::kBuffered));
  }
  v1::ReportProgressResponse response;
  response.set_stop_requested(run.stop_requested());
  return response;
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
