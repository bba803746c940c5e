#include "services/common/worker_agent.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::client {
namespace {

std::string HostName() {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// Whether two answers describe the same work.
bool SameWork(const std::optional<v1::Assignment>& a, const std::optional<v1::Assignment>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a) return true;
  return a->run_id() == b->run_id() && a->generation() == b->generation();
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkerAgent>> WorkerAgent::Start(const WorkerAgentOptions& options) {
  if (options.role == v1::WORKER_ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError("worker agent: no role given");
  }
  if (options.address.empty()) {
    return absl::InvalidArgumentError("worker agent: no address (host:port) given");
  }
  WorkerAgentOptions resolved = options;
  if (resolved.hostname.empty()) resolved.hostname = HostName();
  ControllerClientOptions client_options;
  client_options.address = options.controller;
  client_options.security = options.security;
  client_options.timeout = options.rpc_timeout;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ControllerClient> client,
                       ControllerClient::Connect(client_options));
  std::unique_ptr<WorkerAgent> agent(new WorkerAgent(std::move(resolved), std::move(client)));
  {
    std::lock_guard<std::mutex> lock(agent->heartbeat_mutex_);
    SAE_RETURN_IF_ERROR(agent->Register(absl::Now() + options.register_timeout));
  }
  SAE_RETURN_IF_ERROR(agent->HeartbeatNow());
  agent->loop_turn_unix_ns_ = absl::ToUnixNanos(absl::Now());
  agent->thread_ = std::thread([raw = agent.get()] { raw->Loop(); });
  return agent;
}

WorkerAgent::WorkerAgent(WorkerAgentOptions options, std::unique_ptr<ControllerClient> client)
    : options_(std::move(options)), client_(std::move(client)) {}

WorkerAgent::~WorkerAgent() { Shutdown(); }

void WorkerAgent::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shutdown_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string WorkerAgent::worker_id() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return worker_id_;
}

absl::Duration WorkerAgent::lease() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lease_;
}

AssignmentState WorkerAgent::Current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

AssignmentState WorkerAgent::WaitForChange(uint64_t after_version, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                    [&] { return shutdown_ || state_.version > after_version; });
  return state_;
}

void WorkerAgent::SetChangeCallback(std::function<void(const AssignmentState&)> callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  callback_ = std::move(callback);
}

absl::Status WorkerAgent::Register(absl::Time give_up) {
  v1::RegisterWorkerRequest request;
  request.set_role(options_.role);
  request.set_address(options_.address);
  request.set_hostname(options_.hostname);
  request.set_pid(::getpid());
  request.set_memory_bytes(options_.memory_bytes);
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    absl::StatusOr<v1::RegisterWorkerResponse> response = client_->RegisterWorker(request);
    if (response.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      worker_id_ = response->worker_id();
      heartbeat_interval_ =
          absl::Milliseconds(std::max<int64_t>(response->heartbeat_interval_ms(), 10));
      if (response->lease_ms() > 0) lease_ = absl::Milliseconds(response->lease_ms());
      return absl::OkStatus();
    }
    bool retry =
        absl::IsUnavailable(response.status()) || absl::IsDeadlineExceeded(response.status());
    if (!retry || absl::Now() + backoff > give_up) return response.status();
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

absl::Status WorkerAgent::HeartbeatNow() {
  std::lock_guard<std::mutex> lock(heartbeat_mutex_);
  return Heartbeat();
}

absl::Status WorkerAgent::Heartbeat() {
  v1::HeartbeatRequest request;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    request.set_worker_id(worker_id_);
    if (state_.assignment) {
      request.set_run_id(state_.assignment->run_id());
      request.set_generation(state_.assignment->generation());
    }
  }
  absl::StatusOr<v1::HeartbeatResponse> response = client_->Heartbeat(request);
  if (absl::IsNotFound(response.status())) {
    // The controller does not know this worker any more: start over under a new id.
    spdlog::warn("worker {}: the controller no longer knows this worker; registering again",
                 request.worker_id());
    Apply(std::nullopt, false);
    SAE_RETURN_IF_ERROR(Register(absl::Now()));
    response = client_->Heartbeat([&] {
      v1::HeartbeatRequest again;
      again.set_worker_id(worker_id());
      return again;
    }());
  }
  SAE_RETURN_IF_ERROR(response.status());
  std::optional<v1::Assignment> assignment;
  if (response->has_assignment()) assignment = response->assignment();
  Apply(std::move(assignment), response->stop_requested());
  return absl::OkStatus();
}

void WorkerAgent::Apply(std::optional<v1::Assignment> assignment, bool stop_requested) {
  std::function<void(const AssignmentState&)> callback;
  AssignmentState snapshot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    bool same = SameWork(state_.assignment, assignment);
    // stop_requested belongs to the work it was given for.
    if (!assignment) stop_requested = false;
    if (same && state_.stop_requested == stop_requested && state_.version > 0) return;
    state_.assignment = std::move(assignment);
    state_.stop_requested = stop_requested;
    ++state_.version;
    snapshot = state_;
    callback = callback_;
  }
  // The callback runs before the waiters wake, so that whoever sees the change also sees its
  // callback's effects.
  if (callback) callback(snapshot);
  changed_.notify_all();
}

absl::Status WorkerAgent::CheckHealth() const {
  absl::Duration interval;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (shutdown_) return absl::OkStatus();
    interval = heartbeat_interval_;
  }
  const absl::Duration silent = absl::Now() - absl::FromUnixNanos(loop_turn_unix_ns_.load());
  const absl::Duration limit = 3 * options_.rpc_timeout + 5 * interval;
  if (silent > limit) {
    return absl::UnavailableError(absl::StrCat("the heartbeat loop has not run for ",
                                               absl::FormatDuration(silent), " (limit ",
                                               absl::FormatDuration(limit), "): it is stuck"));
  }
  return absl::OkStatus();
}

void WorkerAgent::Loop() {
  while (true) {
    absl::Duration interval;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      interval = heartbeat_interval_;
      changed_.wait_for(lock, absl::ToChronoNanoseconds(interval), [&] { return shutdown_; });
      if (shutdown_) return;
    }
    loop_turn_unix_ns_ = absl::ToUnixNanos(absl::Now());
    absl::Status status = HeartbeatNow();
    if (!status.ok()) {
      spdlog::warn("worker {}: heartbeat failed: {}", worker_id(), status.ToString());
    }
  }
}

absl::StatusOr<v1::ReportProgressResponse> WorkerAgent::ReportProgress(
    v1::ReportProgressRequest request) {
  std::optional<v1::Assignment> assignment = Current().assignment;
  request.set_worker_id(worker_id());
  if (request.run_id().empty()) {
    if (!assignment) {
      return absl::FailedPreconditionError("worker agent: no assignment to report progress on");
    }
    request.set_run_id(assignment->run_id());
    request.set_generation(assignment->generation());
  }
  SAE_ASSIGN_OR_RETURN(v1::ReportProgressResponse response, client_->ReportProgress(request));
  if (response.stop_requested() && assignment && assignment->run_id() == request.run_id() &&
      assignment->generation() == request.generation()) {
    Apply(assignment, true);
  }
  return response;
}

absl::StatusOr<v1::CheckpointManifest> WorkerAgent::UploadCheckpoint(const std::string& dir,
                                                                     int64_t step, int64_t tokens,
                                                                     bool final) {
  std::optional<v1::Assignment> assignment = Current().assignment;
  if (!assignment) {
    return absl::FailedPreconditionError("worker agent: no assignment to upload a checkpoint for");
  }
  v1::UploadHeader header;
  header.set_worker_id(worker_id());
  header.set_run_id(assignment->run_id());
  header.set_generation(assignment->generation());
  header.set_step(step);
  header.set_tokens(tokens);
  header.set_final(final);
  return client_->UploadCheckpoint(header, dir);
}

absl::StatusOr<v1::CheckpointManifest> WorkerAgent::DownloadCheckpoint(const std::string& run_id,
                                                                       int64_t step,
                                                                       const std::string& dir) {
  return client_->DownloadCheckpoint(run_id, step, dir);
}

}  // namespace sae::client
