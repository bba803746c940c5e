#include "services/activation_server/worker_mode.h"

#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/util/status.h"
#include "services/activation_server/activation_server.h"
#include "services/common/exit_code.h"
#include "services/common/run_state.h"
#include "services/common/worker_agent.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {
namespace {

// The main loop looks at the assignment and the server this often.
constexpr absl::Duration kTick = absl::Milliseconds(100);

// The server of one run and shard, and where its accounting stands.
struct Serving {
  std::unique_ptr<ActivationServer> server;
  std::string run_id;
  int32_t shard_index = 0;
  int32_t shard_count = 0;
  std::string config_yaml;
  // The generation served; std::nullopt between generations.
  std::optional<uint64_t> generation;
  absl::Time paused_since;
  // server->tokens_generated() at the last report the controller accepted, and at the start of
  // the generation's count (reports carry the tokens of their generation only).
  int64_t reported_tokens = 0;
  int64_t generation_base = 0;
  absl::Time next_report = absl::InfinitePast();
};

class ActivationWorker {
 public:
  ActivationWorker(const ActivationWorkerOptions& options,
                   std::unique_ptr<client::WorkerAgent> agent)
      : options_(options), agent_(std::move(agent)) {}

  absl::Status Run(const std::function<bool(absl::Duration)>& wait_for_shutdown) {
    uint64_t seen = 0;
    while (!wait_for_shutdown(kTick)) {
      client::AssignmentState state = agent_->Current();
      if (state.version != seen) {
        seen = state.version;
        if (state.assignment) {
          Serve(*state.assignment);
        } else {
          Pause();
        }
      }
      if (serving_ == nullptr) continue;
      if (serving_->generation) {
        CheckForwardErrors();
        if (serving_ != nullptr && absl::Now() >= serving_->next_report) Report();
      } else if (absl::Now() - serving_->paused_since > options_.keep_warm) {
        StopServing(absl::StrCat("its run did not come back within ",
                                 absl::FormatDuration(options_.keep_warm)));
      }
    }
    StopServing("shutting down");
    agent_->Shutdown();
    return absl::OkStatus();
  }

 private:
  // Serves `assignment`: the same run and shard keep their server (CanKeepServing), anything else
  // starts one.
  void Serve(const v1::Assignment& assignment) {
    if (serving_ != nullptr &&
        CanKeepServing(ServedShard{serving_->run_id, serving_->shard_index, serving_->shard_count,
                                   serving_->config_yaml},
                       serving_->server->frontier(), assignment)) {
      serving_->generation = assignment.generation();
      serving_->generation_base = serving_->reported_tokens;
      serving_->next_report = absl::InfinitePast();
      serving_->server->SetTrainerGeneration(static_cast<int64_t>(assignment.generation()));
      spdlog::info(
          "serving generation {} of run {} (shard {}/{}): the model, mixing buffer and frontier "
          "{} stay",
          assignment.generation(), assignment.run_id(), assignment.shard_index(),
          assignment.shard_count(), serving_->server->frontier().DebugString());
      return;
    }
    const bool same_shard = serving_ != nullptr && serving_->run_id == assignment.run_id() &&
                            serving_->shard_index == assignment.shard_index() &&
                            serving_->shard_count == assignment.shard_count();
    StopServing(same_shard ? "the shard's reported cursor is beyond its frontier (another server "
                             "served it further), so it starts again from that cursor"
                           : "it was assigned other work");
    spdlog::info("assigned run {} generation {}: activation server shard {}/{} on {}",
                 assignment.run_id(), assignment.generation(), assignment.shard_index(),
                 assignment.shard_count(), options_.listen);
    absl::StatusOr<std::unique_ptr<ActivationServer>> server = StartServer(assignment);
    if (!server.ok()) {
      const bool fatal = service::IsUsersMistake(server.status());
      spdlog::error("run {}: cannot serve shard {}: {}", assignment.run_id(),
                    assignment.shard_index(), std::string(server.status().message()));
      Fail(assignment.run_id(), assignment.generation(), std::string(server.status().message()),
           fatal);
      return;
    }
    serving_ = std::make_unique<Serving>();
    serving_->server = *std::move(server);
    serving_->run_id = assignment.run_id();
    serving_->shard_index = assignment.shard_index();
    serving_->shard_count = assignment.shard_count();
    serving_->config_yaml = assignment.config_yaml();
    serving_->generation = assignment.generation();
  }

  absl::StatusOr<std::unique_ptr<ActivationServer>> StartServer(const v1::Assignment& assignment) {
    SAE_ASSIGN_OR_RETURN(config::RunConfig config,
                         config::ParseRunConfig(assignment.config_yaml(),
                                                absl::StrCat("run.yaml of ", assignment.run_id())));
    ActivationServerOptions options;
    options.config = std::move(config);
    options.run_id = assignment.run_id();
    options.shard_index = static_cast<uint32_t>(assignment.shard_index());
    options.shard_count = static_cast<uint32_t>(assignment.shard_count());
    options.listen = options_.listen;
    if (!assignment.shard_cursor().empty()) {
      absl::StatusOr<data::ShardCursor> cursor =
          data::ShardCursor::FromBytes(assignment.shard_cursor());
      if (!cursor.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("the controller's cursor of shard ",
                                                       assignment.shard_index(), ": ",
                                                       cursor.status().message()));
      }
      options.resume_cursor = *cursor;
    }
    options.trainer_generation = static_cast<int64_t>(assignment.generation());
    options.other_runs_are_early = true;
    options.max_batches_per_call = options_.max_batches_per_call;
    options.security = options_.security;
    options.metrics = options_.metrics;
    return ActivationServer::Start(std::move(options));
  }

  // No assignment: stop serving; keep the server while its run may come back.
  void Pause() {
    if (serving_ == nullptr || !serving_->generation) return;
    serving_->server->SetTrainerGeneration(ActivationServiceImpl::kBetweenGenerations);
    serving_->generation.reset();
    serving_->paused_since = absl::Now();
    absl::StatusOr<v1::Run> run = agent_->client().GetRun(serving_->run_id);
    if (absl::IsNotFound(run.status()) || (run.ok() && client::IsFinalState(run->state()))) {
      StopServing(run.ok() ? absl::StrCat("its run is ", client::RunStateName(run->state()))
                           : "its run is gone");
      return;
    }
    spdlog::info("run {} is between generations: serving no trainers, staying loaded for {}",
                 serving_->run_id, absl::FormatDuration(options_.keep_warm));
  }

  void StopServing(const std::string& why) {
    if (serving_ == nullptr) return;
    spdlog::info("stopping the server of run {} shard {}/{}: {}", serving_->run_id,
                 serving_->shard_index, serving_->shard_count, why);
    serving_->server->Shutdown(options_.shutdown_grace);
    serving_.reset();
  }

  // A failed forward (a bad dataset file, say) ends the server and fails the run.
  void CheckForwardErrors() {
    absl::Status status = serving_->server->generation_status();
    if (status.ok()) return;
    const std::string run_id = serving_->run_id;
    const uint64_t generation = *serving_->generation;
    spdlog::error("run {}: activation generation failed: {}", run_id,
                  std::string(status.message()));
    StopServing("activation generation failed");
    Fail(run_id, generation, absl::StrCat("activation generation failed: ", status.message()),
         true);
  }

  void Report() {
    serving_->next_report = absl::Now() + options_.report_interval;
    const int64_t tokens = serving_->server->tokens_generated();
    v1::ReportProgressRequest report;
    report.set_run_id(serving_->run_id);
    report.set_generation(*serving_->generation);
    report.set_shard_cursor(serving_->server->frontier().ToBytes());
    report.set_tokens_generated(tokens - serving_->generation_base);
    absl::StatusOr<v1::ReportProgressResponse> answer = agent_->ReportProgress(report);
    if (answer.ok()) {
      serving_->reported_tokens = tokens;
    } else if (!absl::IsFailedPrecondition(answer.status())) {
      spdlog::warn("progress of shard {} not delivered: {}", serving_->shard_index,
                   std::string(answer.status().message()));
    }
  }

  void Fail(const std::string& run_id, uint64_t generation, const std::string& error, bool fatal) {
    v1::ReportProgressRequest report;
    report.set_run_id(run_id);
    report.set_generation(generation);
    report.set_outcome(v1::ReportProgressRequest::OUTCOME_FAILED);
    report.set_error(error);
    report.set_fatal(fatal);
    absl::StatusOr<v1::ReportProgressResponse> answer = agent_->ReportProgress(report);
    if (!answer.ok()) {
      spdlog::warn("the failure of run {} was not delivered: {}", run_id,
                   std::string(answer.status().message()));
    }
  }

  const ActivationWorkerOptions options_;
  const std::unique_ptr<client::WorkerAgent> agent_;
  std::unique_ptr<Serving> serving_;
};

}  // namespace

bool CanKeepServing(const ServedShard& served, const data::ShardCursor& frontier,
                    const v1::Assignment& next) {
  if (served.run_id != next.run_id() || served.shard_index != next.shard_index() ||
      served.shard_count != next.shard_count() || served.config_yaml != next.config_yaml()) {
    return false;
  }
  if (next.shard_cursor().empty()) return true;
  absl::StatusOr<data::ShardCursor> cursor = data::ShardCursor::FromBytes(next.shard_cursor());
  return cursor.ok() && !cursor->IsAfter(frontier);
}

absl::Status RunActivationServerWorker(
    const ActivationWorkerOptions& options,
    const std::function<bool(absl::Duration)>& wait_for_shutdown) {
  if (options.listen.empty()) {
    return absl::InvalidArgumentError("--listen HOST:PORT is needed with --controller");
  }
  if (absl::EndsWith(options.listen, ":0")) {
    return absl::InvalidArgumentError(
        "--listen needs a fixed port with --controller: the trainers are told it");
  }
  client::WorkerAgentOptions agent_options;
  agent_options.controller = options.controller;
  agent_options.security = options.controller_security;
  agent_options.role = v1::WORKER_ROLE_ACTIVATION_SERVER;
  agent_options.address = options.advertise.empty() ? options.listen : options.advertise;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<client::WorkerAgent> agent,
                       client::WorkerAgent::Start(agent_options));
  spdlog::info("registered with the controller at {} as {} (trainers reach it at {})",
               options.controller, agent->worker_id(), agent_options.address);
  client::WorkerAgent* raw_agent = agent.get();
  ActivationWorker worker(options, std::move(agent));
  // Unbound (before the worker and its agent go) when this scope ends.
  service::HealthSource::Binding health(options.health,
                                        [raw_agent] { return raw_agent->CheckHealth(); });
  return worker.Run(wait_for_shutdown);
}

}  // namespace sae::activation_server
