// saectl submit | get runs | describe run | logs | wait | stop | delete | checkpoints: runs on
// a controller, kubectl's way (export is in run_export_command.cc).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_config.h"
#include "core/util/status.h"
#include "services/common/run_state.h"
#include "tools/saectl/command.h"
#include "tools/saectl/follow.h"
#include "tools/saectl/format.h"
#include "tools/saectl/memory_report.h"
#include "tools/saectl/run_output.h"
#include "tools/saectl/sae_inputs.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;
using client::IsFinalState;
using client::RunStateName;

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) != 0; }

// ---- submit ----

struct SubmitFlags {
  ServerFlags server;
  std::string config;
  std::vector<std::string> sets;
  std::string name;
  bool dry_run = false;
  bool follow = false;
  bool detach = false;
};

absl::Status RunSubmit(const SubmitFlags& f) {
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, config::LoadRunConfig(f.config, f.sets));
  for (const std::string& warning : config.source.warnings) {
    std::fprintf(stderr, "saectl: warning: %s\n", warning.c_str());
  }
  if (!f.name.empty()) config.run_name = f.name;
  if (f.dry_run) {
    std::printf("%s", config::ToYaml(config).c_str());
    PrintMemoryEstimate(config);
    if (config::TrainsManySaes(config)) {
      SAE_ASSIGN_OR_RETURN(std::vector<config::SaeChild> saes, config::ExpandSaes(config));
      std::fprintf(stderr, "saectl: %zu SAEs:", saes.size());
      for (const config::SaeChild& sae : saes) std::fprintf(stderr, " %s", sae.name.c_str());
      std::fprintf(stderr, "\n");
    }
    std::fprintf(stderr, "saectl: %s is valid (dry run: nothing submitted)\n", f.config.c_str());
    return absl::OkStatus();
  }
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  v1::SubmitRunRequest request;
  request.set_config_yaml(config::ToYaml(config));
  request.set_name(f.name);
  // The controller refuses a run no registered trainer can hold (docs/operations.md, Memory).
  if (std::optional<config::RunMemory> memory = EstimateRunMemory(config)) {
    request.set_memory_estimate_bytes(memory->total());
  }
  absl::StatusOr<v1::Run> submitted = client->SubmitRun(request);
  if (absl::IsResourceExhausted(submitted.status()) && request.memory_estimate_bytes() > 0) {
    PrintMemoryEstimate(config);
  }
  SAE_ASSIGN_OR_RETURN(v1::Run run, std::move(submitted));
  std::printf("%s\n", run.run_id().c_str());
  std::fflush(stdout);
  if (!f.follow) {
    std::fprintf(stderr, "saectl: run %s submitted (%s); follow it with: saectl logs %s -f\n",
                 run.run_id().c_str(), RunStateName(run.state()).c_str(), run.run_id().c_str());
    return absl::OkStatus();
  }
  FollowOptions options;
  options.progress_bar = StdoutIsTerminal();
  SAE_ASSIGN_OR_RETURN(v1::Run done, FollowRun(*client, run.run_id(), 0, options));
  if (done.state() == v1::RUN_STATE_SUCCEEDED) {
    std::printf("%s\nexport the SAE with: saectl export %s --out DIR\n",
                SuccessSummary(done).c_str(), done.run_id().c_str());
  }
  return FinalRunStatus(done);
}

// ---- get runs ----

struct GetFlags {
  ServerFlags server;
  std::string run_id;
  std::string output = "table";
  bool watch = false;
};

absl::StatusOr<std::vector<v1::Run>> FetchRuns(client::ControllerClient& client,
                                               const std::string& run_id) {
  if (run_id.empty()) return client.ListRuns();
  SAE_ASSIGN_OR_RETURN(v1::Run run, client.GetRun(run_id));
  return std::vector<v1::Run>{run};
}

void PrintRuns(const std::vector<v1::Run>& runs, const GetFlags& f) {
  if (f.output == "json" || f.output == "yaml") {
    nlohmann::json value;
    if (!f.run_id.empty()) {
      value = ProtoToJson(runs.at(0));
    } else {
      value = {{"runs", nlohmann::json::array()}};
      for (const v1::Run& run : runs) value["runs"].push_back(ProtoToJson(run));
    }
    std::string text = f.output == "json" ? value.dump(2) + "\n" : JsonToYaml(value);
    std::fputs(text.c_str(), stdout);
    return;
  }
  bool wide = f.output == "wide";
  std::vector<std::vector<std::string>> rows = {RunTableHeader(wide)};
  for (const v1::Run& run : runs) rows.push_back(RunTableRow(run, wide, absl::Now()));
  if (runs.empty()) {
    std::fprintf(stderr, "No runs.\n");
    return;
  }
  std::fputs(FormatTable(rows).c_str(), stdout);
}

absl::Status RunGet(const GetFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(std::vector<v1::Run> runs, FetchRuns(*client, f.run_id));
  PrintRuns(runs, f);
  std::fflush(stdout);
  if (!f.watch) return absl::OkStatus();
  // kubectl's -w: a new row whenever a run changes, until Ctrl-C (or the one run ends).
  bool wide = f.output == "wide";
  std::map<std::string, std::string> shown;
  for (const v1::Run& run : runs) shown[run.run_id()] = run.SerializeAsString();
  while (f.run_id.empty() || !IsFinalState(runs.at(0).state())) {
    absl::SleepFor(absl::Seconds(1));
    SAE_ASSIGN_OR_RETURN(runs, FetchRuns(*client, f.run_id));
    std::vector<std::vector<std::string>> rows;
    for (v1::Run& run : runs) {
      // Ages tick every second; a row is news only when the run itself changed.
      std::string key = run.SerializeAsString();
      if (shown[run.run_id()] == key) continue;
      shown[run.run_id()] = key;
      rows.push_back(RunTableRow(run, wide, absl::Now()));
    }
    if (rows.empty()) continue;
    if (f.output == "table" || f.output == "wide") {
      std::vector<std::vector<std::string>> table = {RunTableHeader(wide)};
      table.insert(table.end(), rows.begin(), rows.end());
      std::string text = FormatTable(table);
      std::fputs(text.substr(text.find('\n') + 1).c_str(), stdout);
    } else {
      PrintRuns(runs, f);
    }
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

// ---- describe run ----

struct RunIdFlags {
  ServerFlags server;
  std::string run_id;
};

absl::Status RunDescribe(const RunIdFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(v1::Run run, client->GetRun(f.run_id));
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> checkpoints,
                       client->ListCheckpoints(f.run_id));
  std::vector<v1::RunEvent> events;
  SAE_RETURN_IF_ERROR(
      client->WatchRun(f.run_id, 0, /*follow=*/false, [&](const v1::RunEvent& event) {
        events.push_back(event);
        return true;
      }));
  std::fputs(DescribeRun(run, checkpoints, events, absl::Now()).c_str(), stdout);
  return absl::OkStatus();
}

// ---- logs ----

struct LogsFlags {
  ServerFlags server;
  std::string run_id;
  bool follow = false;
  uint64_t since = 0;
};

absl::Status RunLogs(const LogsFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  if (f.follow) {
    FollowOptions options;
    SAE_ASSIGN_OR_RETURN(v1::Run run, FollowRun(*client, f.run_id, f.since, options));
    (void)run;
    return absl::OkStatus();
  }
  return client->WatchRun(f.run_id, f.since, /*follow=*/false, [](const v1::RunEvent& event) {
    std::printf("%s\n", EventLine(event).c_str());
    return true;
  });
}

// ---- wait ----

struct WaitFlags {
  ServerFlags server;
  std::string run_id;
  double timeout_seconds = 0;
};

absl::Status RunWait(const WaitFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(v1::Run run, client->GetRun(f.run_id));
  if (!IsFinalState(run.state())) {
    FollowOptions options;
    options.print_events = false;
    if (f.timeout_seconds > 0) options.deadline = absl::Now() + absl::Seconds(f.timeout_seconds);
    absl::StatusOr<v1::Run> done = FollowRun(*client, f.run_id, run.last_event_sequence(), options);
    if (absl::IsDeadlineExceeded(done.status())) {
      return absl::DeadlineExceededError(absl::StrCat("run ", f.run_id, " did not finish within ",
                                                      HumanDuration(f.timeout_seconds)));
    }
    SAE_RETURN_IF_ERROR(done.status());
    run = *done;
  }
  std::printf("%s %s\n", run.run_id().c_str(), RunStateName(run.state()).c_str());
  if (run.state() == v1::RUN_STATE_SUCCEEDED) std::printf("%s\n", SuccessSummary(run).c_str());
  return FinalRunStatus(run);
}

// ---- stop, delete ----

absl::Status RunStop(const RunIdFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(v1::Run run, client->StopRun(f.run_id));
  if (IsFinalState(run.state())) {
    std::printf("run %s is %s\n", run.run_id().c_str(), RunStateName(run.state()).c_str());
  } else {
    std::printf(
        "stop requested for run %s: the trainers checkpoint at the next step boundary "
        "(saectl wait %s)\n",
        run.run_id().c_str(), run.run_id().c_str());
  }
  return absl::OkStatus();
}

absl::Status RunDelete(const RunIdFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_RETURN_IF_ERROR(client->DeleteRun(f.run_id));
  std::printf("run %s deleted\n", f.run_id.c_str());
  return absl::OkStatus();
}

// ---- checkpoints ----

struct CheckpointsFlags {
  ServerFlags server;
  std::string run_id;
  std::string output = "table";
};

absl::Status RunCheckpoints(const CheckpointsFlags& f) {
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> checkpoints,
                       client->ListCheckpoints(f.run_id));
  if (f.output == "json") {
    nlohmann::json value = nlohmann::json::array();
    for (v1::CheckpointManifest& manifest : checkpoints) {
      manifest.clear_chunks();  // per-chunk digests are for machines that download
      value.push_back(ProtoToJson(manifest));
    }
    std::printf("%s\n", value.dump(2).c_str());
    return absl::OkStatus();
  }
  if (checkpoints.empty()) {
    std::fprintf(stderr, "Run %s has no checkpoints.\n", f.run_id.c_str());
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows = {CheckpointTableHeader()};
  for (const v1::CheckpointManifest& manifest : checkpoints) {
    rows.push_back(CheckpointTableRow(manifest));
  }
  std::fputs(FormatTable(rows).c_str(), stdout);
  return absl::OkStatus();
}

// ---- registration ----

CLI::App* AddRunIdCommand(CLI::App& parent, const char* name, const char* help,
                          std::shared_ptr<RunIdFlags> flags) {
  CLI::App* command = parent.add_subcommand(name, help);
  command->add_option("RUN", flags->run_id, "Run id")->required();
  AddServerFlags(command, &flags->server);
  return command;
}

}  // namespace

void RegisterRunCommands(CLI::App& app) {
  auto submit_flags = std::make_shared<SubmitFlags>();
  CLI::App* submit = app.add_subcommand(
      "submit", "Validate run.yaml locally, submit it to the controller, print the run id");
  submit->add_option("RUN_YAML", submit_flags->config, "run.yaml")->required();
  submit->add_option("--set", submit_flags->sets, "Override a key: --set key=value (repeatable)");
  submit->add_option("--name", submit_flags->name, "Name of the run (default: run_name, or run)");
  submit->add_flag("--dry-run", submit_flags->dry_run,
                   "Validate and print the resolved config; submit nothing");
  CLI::Option* follow = submit->add_flag(
      "-f,--follow", submit_flags->follow,
      "Follow the run to its end (Ctrl-C detaches); exit 0/1/3 as it SUCCEEDED/FAILED/STOPPED");
  CLI::Option* detach =
      submit->add_flag("--detach", submit_flags->detach, "Return once submitted (the default)");
  follow->excludes(detach);
  AddServerFlags(submit, &submit_flags->server);
  submit->callback([submit_flags] { RunCommand([&] { return RunSubmit(*submit_flags); }); });

  CLI::App* get = app.add_subcommand("get", "List resources")->require_subcommand(1);
  auto get_flags = std::make_shared<GetFlags>();
  CLI::App* get_runs = get->add_subcommand("runs", "List runs, or show one")->alias("run");
  get_runs->add_option("RUN", get_flags->run_id, "Only this run");
  get_runs->add_option("-o,--output", get_flags->output, "table | wide | json | yaml")
      ->check(CLI::IsMember({"table", "wide", "json", "yaml"}))
      ->capture_default_str();
  get_runs->add_flag("-w,--watch", get_flags->watch,
                     "After listing, print a row whenever a run changes (Ctrl-C ends)");
  AddServerFlags(get_runs, &get_flags->server);
  get_runs->callback([get_flags] { RunCommand([&] { return RunGet(*get_flags); }); });

  CLI::App* describe =
      app.add_subcommand("describe", "Show a resource in detail")->require_subcommand(1);
  auto describe_flags = std::make_shared<RunIdFlags>();
  AddRunIdCommand(*describe, "run",
                  "A run's state, progress, metrics, workers, checkpoints, history, last error "
                  "and config",
                  describe_flags)
      ->callback([describe_flags] { RunCommand([&] { return RunDescribe(*describe_flags); }); });

  auto logs_flags = std::make_shared<LogsFlags>();
  CLI::App* logs = app.add_subcommand("logs", "Print a run's events");
  logs->add_option("RUN", logs_flags->run_id, "Run id")->required();
  logs->add_flag("-f,--follow", logs_flags->follow,
                 "Keep printing events until the run ends (Ctrl-C detaches)");
  logs->add_option("--since", logs_flags->since,
                   "Only events after this sequence number (resume where you left off)");
  AddServerFlags(logs, &logs_flags->server);
  logs->callback([logs_flags] { RunCommand([&] { return RunLogs(*logs_flags); }); });

  auto wait_flags = std::make_shared<WaitFlags>();
  CLI::App* wait = app.add_subcommand(
      "wait", "Wait for a run to end; exit 0 SUCCEEDED, 1 FAILED, 3 STOPPED or timed out");
  wait->add_option("RUN", wait_flags->run_id, "Run id")->required();
  wait->add_option("--timeout", wait_flags->timeout_seconds, "Seconds to wait (default: forever)")
      ->check(CLI::PositiveNumber);
  AddServerFlags(wait, &wait_flags->server);
  wait->callback([wait_flags] { RunCommand([&] { return RunWait(*wait_flags); }); });

  auto stop_flags = std::make_shared<RunIdFlags>();
  AddRunIdCommand(app, "stop", "Stop a run at the next step boundary, keeping its last checkpoint",
                  stop_flags)
      ->callback([stop_flags] { RunCommand([&] { return RunStop(*stop_flags); }); });

  auto delete_flags = std::make_shared<RunIdFlags>();
  AddRunIdCommand(app, "delete", "Delete a finished run with its events and checkpoints",
                  delete_flags)
      ->callback([delete_flags] { RunCommand([&] { return RunDelete(*delete_flags); }); });

  auto checkpoints_flags = std::make_shared<CheckpointsFlags>();
  CLI::App* checkpoints = app.add_subcommand("checkpoints", "List a run's checkpoints");
  checkpoints->add_option("RUN", checkpoints_flags->run_id, "Run id")->required();
  checkpoints->add_option("-o,--output", checkpoints_flags->output, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  AddServerFlags(checkpoints, &checkpoints_flags->server);
  checkpoints->callback(
      [checkpoints_flags] { RunCommand([&] { return RunCheckpoints(*checkpoints_flags); }); });

  RegisterRunExportCommand(app);
}

}  // namespace sae::saectl
