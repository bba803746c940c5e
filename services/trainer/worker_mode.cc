#include "services/trainer/worker_mode.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "services/common/exit_code.h"
#include "services/common/host_port.h"
#include "services/common/worker_agent.h"
#include "services/trainer/checkpoint_upload.h"
#include "services/trainer/distributed_training.h"
#include "services/trainer/progress_sender.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {
namespace {

namespace fs = std::filesystem;
using Outcome = v1::ReportProgressRequest::Outcome;

// The main loop looks at the assignment and the training this often.
constexpr absl::Duration kTick = absl::Milliseconds(100);
// A failure before the group formed is retried after this long.
constexpr absl::Duration kRetryDelay = absl::Seconds(1);
// After SIGTERM, a training that has not reached a step boundary by then is abandoned.
constexpr absl::Duration kShutdownCheckpointWait = absl::Seconds(8);

// What an assignment is about: a run and one generation of its group.
struct Work {
  std::string run_id;
  uint64_t generation = 0;
  bool operator==(const Work& other) const {
    return run_id == other.run_id && generation == other.generation;
  }
  bool operator!=(const Work& other) const { return !(*this == other); }
};

Work WorkOf(const v1::Assignment& assignment) {
  return {assignment.run_id(), assignment.generation()};
}

std::string Describe(const Work& work) {
  return absl::StrCat("run ", work.run_id, " generation ", work.generation);
}

// One generation's training, on a thread of its own.
struct Attempt {
  v1::Assignment assignment;
  std::atomic<bool> stop{false};   // checkpoint and stop at the next step boundary
  std::atomic<bool> abort{false};  // abandon now
  std::atomic<bool> group_ready{false};
  std::atomic<bool> report_skipped{false};  // rank 0 still has to report the skipped tokens
  std::atomic<bool> done{false};
  absl::StatusOr<DistributedTrainingResult> result = absl::UnknownError("not run");
  std::thread thread;
};

class TrainerWorker {
 public:
  TrainerWorker(const TrainerWorkerOptions& options, std::unique_ptr<client::WorkerAgent> agent)
      : options_(options), agent_(std::move(agent)) {}

  absl::Status Run(const std::function<bool(absl::Duration)>& wait_for_shutdown);

 private:
  // What this worker knows about the work of its current assignment.
  struct WorkState {
    Work work;
    bool over = false;  // nothing more to start for this generation
    bool skipped_reported = false;
    std::optional<absl::Time> failing_since;  // attempts fail before the group forms
    std::optional<absl::Time> broken_since;   // the group broke after it formed
    absl::Time retry_at = absl::InfinitePast();
    bool failure_reported = false;
    std::string last_error;
  };

  void OnChange(const client::AssignmentState& state);
  void StartAttempt(const v1::Assignment& assignment);
  void FinishAttempt(bool shutting_down);
  // Reports the failure of a group that broke, or kept failing to form, when the controller did
  // not start another generation within the grace period.
  void CheckBrokenGroup();
  // Sends the pending outcome; retried every second while the controller is away.
  void SendOutcome();
  void QueueOutcome(const v1::Assignment& assignment, Outcome outcome, int64_t checkpoint_step,
                    const std::string& error, bool fatal);

  // The training thread's body and its parts.
  absl::StatusOr<DistributedTrainingResult> Train(Attempt& attempt);
  // The group, servers and worker settings of `assignment` (not the run's config, folders or
  // callbacks).
  void AssignTo(const v1::Assignment& assignment, DistributedTrainingOptions& options) const;

  // The furthest global token count this worker trained to in the newest generation of a run
  // it took part in.
  void NoteTokens(const Work& work, int64_t tokens) {
    std::lock_guard<std::mutex> lock(mutex_);
    Reached& reached = furthest_tokens_[work.run_id];
    if (work.generation > reached.generation) reached = Reached{work.generation, 0};
    if (work.generation == reached.generation) reached.tokens = std::max(reached.tokens, tokens);
  }
  // What this worker trained to in the generation before `work` (0 when it took no part).
  int64_t TokensOfPreviousGeneration(const Work& work) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = furthest_tokens_.find(work.run_id);
    if (it == furthest_tokens_.end() || it->second.generation + 1 != work.generation) return 0;
    return it->second.tokens;
  }
  std::string RunDir(const std::string& run_id) const {
    return absl::StrCat(options_.work_dir, "/", run_id);
  }
  absl::Duration RestartGrace() const {
    return options_.restart_grace > absl::ZeroDuration() ? options_.restart_grace
                                                         : 2 * agent_->lease() + absl::Seconds(5);
  }

  const TrainerWorkerOptions options_;
  const std::unique_ptr<client::WorkerAgent> agent_;

  // Main loop state.
  std::unique_ptr<Attempt> attempt_;
  std::optional<WorkState> work_;
  std::optional<v1::ReportProgressRequest> outcome_;
  absl::Time outcome_retry_at_ = absl::InfinitePast();
  std::string finished_run_dir_;  // removed once the worker is idle

  struct Reached {
    uint64_t generation = 0;
    int64_t tokens = 0;
  };
  std::mutex mutex_;  // Guards furthest_tokens_ (written by the training thread).
  std::map<std::string, Reached> furthest_tokens_;  // by run id
};

absl::Status TrainerWorker::Run(const std::function<bool(absl::Duration)>& wait_for_shutdown) {
  uint64_t seen = 0;
  std::optional<absl::Time> shutdown_since;
  while (true) {
    if (!shutdown_since) {
      if (wait_for_shutdown(kTick)) {
        shutdown_since = absl::Now();
        if (attempt_ != nullptr) {
          spdlog::info("shutting down: checkpointing at the next step boundary first");
          attempt_->stop = true;
        }
      }
    } else {
      absl::SleepFor(kTick);
      if (attempt_ != nullptr && !attempt_->abort &&
          absl::Now() - *shutdown_since > kShutdownCheckpointWait) {
        spdlog::warn("shutting down: no step boundary within {}; abandoning the training",
                     absl::FormatDuration(kShutdownCheckpointWait));
        attempt_->abort = true;
      }
    }
    client::AssignmentState state = agent_->Current();
    if (state.version != seen) {
      seen = state.version;
      OnChange(state);
    }
    if (attempt_ != nullptr && attempt_->done) FinishAttempt(shutdown_since.has_value());
    if (shutdown_since && attempt_ == nullptr) break;
    SendOutcome();
    CheckBrokenGroup();
    if (shutdown_since || attempt_ != nullptr) continue;
    if (!state.assignment) {
      if (!finished_run_dir_.empty()) {
        std::error_code ignored;
        fs::remove_all(finished_run_dir_, ignored);
        finished_run_dir_.clear();
      }
      continue;
    }
    if (work_ && work_->work == WorkOf(*state.assignment) &&
        (work_->over || absl::Now() < work_->retry_at)) {
      continue;
    }
    StartAttempt(*state.assignment);
  }
  SendOutcome();
  agent_->Shutdown();
  return absl::OkStatus();
}

void TrainerWorker::OnChange(const client::AssignmentState& state) {
  const std::optional<Work> work =
      state.assignment ? std::optional<Work>(WorkOf(*state.assignment)) : std::nullopt;
  if (!work) {
    spdlog::info("no assignment: idle");
  } else if (!work_ || work_->work != *work) {
    spdlog::info("assigned {}: trainer rank {} of {}, rendezvous {}", Describe(*work),
                 state.assignment->rank(), state.assignment->world_size(),
                 state.assignment->rendezvous_address());
  }
  if (work && (!work_ || work_->work != *work)) {
    work_ = WorkState{};
    work_->work = *work;
  }
  if (!work) work_.reset();
  if (attempt_ == nullptr || attempt_->done) return;
  const Work running = WorkOf(attempt_->assignment);
  if (!work || *work != running) {
    spdlog::info("{} is over for this worker: abandoning its training", Describe(running));
    attempt_->abort = true;
  } else if (state.stop_requested && !attempt_->stop) {
    spdlog::info("the run is stopping: checkpointing at the next step boundary");
    attempt_->stop = true;
  }
}

void TrainerWorker::StartAttempt(const v1::Assignment& assignment) {
  attempt_ = std::make_unique<Attempt>();
  attempt_->assignment = assignment;
  attempt_->report_skipped = assignment.rank() == 0 && !work_->skipped_reported;
  Attempt* attempt = attempt_.get();
  attempt->thread = std::thread([this, attempt] {
    try {
      attempt->result = Train(*attempt);
    } catch (const std::exception& e) {
      attempt->result = absl::InternalError(absl::StrCat("training failed: ", e.what()));
    }
    attempt->done = true;
  });
}

void TrainerWorker::FinishAttempt(bool shutting_down) {
  attempt_->thread.join();
  std::unique_ptr<Attempt> attempt = std::move(attempt_);
  const v1::Assignment& assignment = attempt->assignment;
  const Work work = WorkOf(assignment);
  const bool current = work_ && work_->work == work;
  if (current && !attempt->report_skipped && assignment.rank() == 0) {
    work_->skipped_reported = true;
  }
  finished_run_dir_ = RunDir(work.run_id);
  if (attempt->abort || !current) return;
  WorkState& state = *work_;
  const absl::StatusOr<DistributedTrainingResult>& result = attempt->result;
  if (result.ok()) {
    state.over = true;
    if (!result->stopped) {
      spdlog::info("{}: trained to the end ({} steps, {} tokens)", Describe(work), result->steps,
                   result->tokens);
      if (assignment.rank() == 0) {
        QueueOutcome(assignment, v1::ReportProgressRequest::OUTCOME_FINISHED, result->steps, "",
                     false);
      }
      return;
    }
    if (shutting_down) return;
    // Stopped at a step boundary: asked by the controller (rank 0 confirms), or a peer's
    // shutdown stopped the whole group.
    absl::StatusOr<v1::Run> run = agent_->client().GetRun(work.run_id);
    if (run.ok() && run->stop_requested()) {
      if (assignment.rank() == 0) {
        QueueOutcome(assignment, v1::ReportProgressRequest::OUTCOME_STOPPED, result->steps, "",
                     false);
      }
      return;
    }
    state.broken_since = absl::Now();
    state.last_error = "the group stopped at a step boundary because a peer shut down";
    spdlog::warn("{}: {}; waiting for the controller's next generation", Describe(work),
                 state.last_error);
    return;
  }
  const absl::Status& status = result.status();
  state.last_error = std::string(status.message());
  if (service::IsUsersMistake(status)) {
    state.over = true;
    spdlog::error("{}: {}", Describe(work), std::string(status.message()));
    QueueOutcome(assignment, v1::ReportProgressRequest::OUTCOME_FAILED, 0, state.last_error, true);
    return;
  }
  if (!attempt->group_ready) {
    if (!state.failing_since) state.failing_since = absl::Now();
    state.retry_at = absl::Now() + kRetryDelay;
    spdlog::warn("{}: the group did not form ({}); trying again in {}", Describe(work),
                 std::string(status.message()), absl::FormatDuration(kRetryDelay));
    return;
  }
  state.over = true;
  state.broken_since = absl::Now();
  spdlog::warn("{}: the group broke ({}); waiting for the controller's next generation",
               Describe(work), std::string(status.message()));
}

void TrainerWorker::CheckBrokenGroup() {
  if (!work_ || work_->failure_reported || attempt_ != nullptr) return;
  std::optional<absl::Time> since =
      work_->broken_since ? work_->broken_since : work_->failing_since;
  if (!since || absl::Now() - *since < RestartGrace()) return;
  std::optional<v1::Assignment> assignment = agent_->Current().assignment;
  if (!assignment || WorkOf(*assignment) != work_->work) return;
  work_->failure_reported = true;
  work_->over = true;
  spdlog::warn("{}: no new generation within {}; reporting the failure", Describe(work_->work),
               absl::FormatDuration(RestartGrace()));
  QueueOutcome(*assignment, v1::ReportProgressRequest::OUTCOME_FAILED, 0, work_->last_error, false);
}

void TrainerWorker::QueueOutcome(const v1::Assignment& assignment, Outcome outcome,
                                 int64_t checkpoint_step, const std::string& error, bool fatal) {
  v1::ReportProgressRequest request;
  request.set_run_id(assignment.run_id());
  request.set_generation(assignment.generation());
  request.set_outcome(outcome);
  request.set_checkpoint_step(checkpoint_step);
  request.set_error(error);
  request.set_fatal(fatal);
  outcome_ = std::move(request);
  outcome_retry_at_ = absl::InfinitePast();
}

void TrainerWorker::SendOutcome() {
  if (!outcome_ || absl::Now() < outcome_retry_at_) return;
  absl::StatusOr<v1::ReportProgressResponse> answer = agent_->ReportProgress(*outcome_);
  const std::string what = v1::ReportProgressRequest::Outcome_Name(outcome_->outcome());
  if (answer.ok()) {
    spdlog::info("reported {} for run {} generation {}", what, outcome_->run_id(),
                 outcome_->generation());
    outcome_.reset();
  } else if (absl::IsFailedPrecondition(answer.status()) || absl::IsNotFound(answer.status())) {
    spdlog::warn("{} for run {} dropped: {}", what, outcome_->run_id(),
                 std::string(answer.status().message()));
    outcome_.reset();
  } else {
    spdlog::warn("{} for run {} not delivered ({}); retrying", what, outcome_->run_id(),
                 std::string(answer.status().message()));
    outcome_retry_at_ = absl::Now() + absl::Seconds(1);
  }
}

// ---- The training thread ----

absl::StatusOr<DistributedTrainingResult> TrainerWorker::Train(Attempt& attempt) {
  const v1::Assignment& assignment = attempt.assignment;
  const bool rank0 = assignment.rank() == 0;
  SAE_ASSIGN_OR_RETURN(config::RunConfig config,
                       config::ParseRunConfig(assignment.config_yaml(),
                                              absl::StrCat("run.yaml of ", assignment.run_id())));
  // A run of many SAEs (core/config/sweep.h): their names, in the run's order.
  const bool many = config::TrainsManySaes(config);
  std::vector<std::string> sae_names;
  {
    SAE_ASSIGN_OR_RETURN(std::vector<config::SaeChild> children, config::ExpandSaes(config));
    for (const config::SaeChild& child : children) sae_names.push_back(child.name);
  }
  const std::string run_dir = RunDir(assignment.run_id());
  const std::string dir = absl::StrCat(run_dir, "/g", assignment.generation());
  std::error_code ignored;
  fs::remove_all(run_dir, ignored);
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));

  DistributedTrainingOptions options;
  int64_t checkpoint_step = 0;  // where the group starts
  int64_t checkpoint_tokens = 0;
  if (assignment.has_resume_checkpoint_step()) {
    const std::string resume = dir + "/resume";
    absl::StatusOr<v1::CheckpointManifest> manifest = agent_->DownloadCheckpoint(
        assignment.run_id(), assignment.resume_checkpoint_step(), resume);
    if (!manifest.ok()) {
      // The controller is away or moved on; not the config's fault.
      return absl::UnavailableError(absl::StrCat("downloading the checkpoint at step ",
                                                 assignment.resume_checkpoint_step(), ": ",
                                                 manifest.status().message()));
    }
    spdlog::info("resuming {} from its checkpoint at step {} ({} tokens)",
                 Describe(WorkOf(assignment)), manifest->step(), manifest->tokens());
    options.resume_dir = resume;
    checkpoint_step = manifest->step();
    checkpoint_tokens = manifest->tokens();
  }

  const int64_t batch = config.train_batch_size;
  const int64_t last_step = config::TotalTrainingSteps(config);
  std::unique_ptr<ProgressSender> sender;
  if (rank0) sender = std::make_unique<ProgressSender>(agent_.get());

  AssignTo(assignment, options);
  options.config = std::move(config);
  options.output_dir = dir + "/output";
  options.stop = &attempt.stop;
  options.abort = &attempt.abort;
  options.tokens_trained_before = TokensOfPreviousGeneration(WorkOf(assignment));
  options.on_group_ready = [&](int64_t tokens_trained_before) {
    attempt.group_ready = true;
    const bool restarted = assignment.has_resume_checkpoint_step() || assignment.generation() > 0;
    if (attempt.report_skipped && restarted) {
      ReportSkippedTokens(*agent_, assignment, checkpoint_step, checkpoint_tokens,
                          tokens_trained_before);
    }
    attempt.report_skipped = false;
  };
  StepReports reports(sender.get(), assignment, options.config.wandb_log_frequency,
                      sae_names.size());
  options.on_step = [&](const sparse::StepMetrics& m, double tokens_per_second,
                        int64_t total_steps) {
    NoteTokens(WorkOf(assignment), m.tokens);
    reports.OnStep(m, tokens_per_second, total_steps);
  };
  if (many) {
    options.on_sae_step = [&](size_t index, const std::string& name, const sparse::StepMetrics& m,
                              double tokens_per_second, int64_t total_steps) {
      if (reports.OnSaeStep(index, name, m, tokens_per_second, total_steps)) {
        NoteTokens(WorkOf(assignment), m.tokens);
      }
    };
  }
  options.on_eval = [&](const RemoteEvaluation& outcome) {
    ReportEvaluation(*agent_, assignment, outcome);
  };
  options.on_checkpoint = [&](const std::string& checkpoint, int64_t step,
                              bool final) -> absl::Status {
    // The checkpoint of the last step is followed at once by the final SAE of the same step,
    // which replaces it in the controller (checkpoints are keyed by step): uploading it would
    // move the whole trainer state (parameters and Adam moments) only to drop it.
    if (!final && step >= last_step) return absl::OkStatus();
    if (sender != nullptr) sender->Flush();
    v1::UploadHeader header = CheckpointHeader(assignment, step, step * batch, final,
                                               many ? sae_names : std::vector<std::string>{});
    return UploadCheckpoint(*agent_, std::move(header), checkpoint, attempt.abort);
  };
  absl::StatusOr<DistributedTrainingResult> result = RunDistributedTraining(std::move(options));
  if (sender != nullptr) sender->Flush();
  return result;
}

void TrainerWorker::AssignTo(const v1::Assignment& assignment,
                             DistributedTrainingOptions& options) const {
  options.run_id = assignment.run_id();
  options.generation = assignment.generation();
  options.group = options_.group;
  options.group.rank = assignment.rank();
  options.group.world_size = assignment.world_size();
  options.group.rendezvous = assignment.rendezvous_address();
  options.group.key = assignment.rendezvous_key();
  // Gloo binds to the address this worker registered (the one the controller hands its peers),
  // not to every interface, unless --bind-address says otherwise.
  if (options.group.bind_address.empty()) {
    absl::StatusOr<service::HostPort> registered =
        service::SplitHostPort(options_.listen, "--listen");
    if (registered.ok() && !registered->IsWildcard()) {
      options.group.bind_address = registered->host;
    }
  }
  options.servers.assign(assignment.activation_server_addresses().begin(),
                         assignment.activation_server_addresses().end());
  options.stream = options_.stream;
  options.metrics = options_.metrics;
}

}  // namespace

absl::Status RunTrainerWorker(const TrainerWorkerOptions& options,
                              const std::function<bool(absl::Duration)>& wait_for_shutdown) {
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("--listen HOST:PORT is needed with --controller");
  }
  if (options.work_dir.empty()) {
    return absl::InvalidArgumentError("--work-dir is needed with --controller");
  }
  SAE_ASSIGN_OR_RETURN(service::HostPort listen, service::SplitHostPort(options.listen, "--listen"));
  if (listen.port == 0) {
    return absl::InvalidArgumentError(
        "--listen needs a fixed port: as rank 0 the trainer hosts the group's store there");
  }
  SAE_RETURN_IF_ERROR(MakeDirectories(options.work_dir));
  client::WorkerAgentOptions agent_options;
  agent_options.controller = options.controller;
  agent_options.security = options.controller_security;
  agent_options.role = v1::WORKER_ROLE_TRAINER;
  agent_options.address = options.listen;
  agent_options.memory_bytes = options.memory_bytes;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<client::WorkerAgent> agent,
                       client::WorkerAgent::Start(agent_options));
  spdlog::info("registered with the controller at {} as {} ({}; memory for runs {})",
               options.controller, agent->worker_id(), options.listen,
               options.memory_bytes > 0 ? absl::StrCat(options.memory_bytes >> 20, " MiB")
                                        : std::string("not reported"));
  client::WorkerAgent* raw_agent = agent.get();
  TrainerWorker worker(options, std::move(agent));
  // Unbound (before the worker and its agent go) when this scope ends.
  service::HealthSource::Binding health(options.health,
                                        [raw_agent] { return raw_agent->CheckHealth(); });
  return worker.Run(wait_for_shutdown);
}

}  // namespace sae::trainer
