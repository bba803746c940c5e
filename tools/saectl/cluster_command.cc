// saectl cluster up | status | down: a controller and local workers as separate processes on
// loopback, for one machine. The processes, their ports and command lines are recorded in
// DATA_DIR/cluster.json; their logs go to DATA_DIR/logs/; the controller's store lives in
// DATA_DIR/controller, so runs survive a `cluster down` and `cluster up`.
//
// `cluster up` runs in two processes: the one the user started re-executes itself in a session
// of its own (the supervisor), which starts the cluster (cluster_up.h) as its children, prints
// what it started on the user's terminal, reports its outcome through a pipe, and then stays
// behind supervising the processes (cluster_supervisor.h), logging to DATA_DIR/logs/
// supervisor.log. The first process exits with the start-up's exit code.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "services/common/run_state.h"
#include "tools/saectl/cluster_processes.h"
#include "tools/saectl/cluster_supervisor.h"
#include "tools/saectl/cluster_up.h"
#include "tools/saectl/command.h"
#include "tools/saectl/format.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;

// Set in the supervisor's environment: the file descriptor on which it reports the start-up's
// exit code (one byte) to the `cluster up` the user started.
constexpr char kReportFdEnv[] = "SAECTL_CLUSTER_REPORT_FD";

// ---- up ----

std::atomic<bool> stop_supervising{false};

void OnTerminationSignal(int) { stop_supervising.store(true); }

// The supervisor's side: starts the cluster, reports, and supervises until SIGTERM.
absl::Status UpAndSupervise(ClusterFlags f, int report_fd) {
  ::fcntl(report_fd, F_SETFD, FD_CLOEXEC);  // the cluster's processes must not hold it
  ::unsetenv(kReportFdEnv);
  ::signal(SIGPIPE, SIG_IGN);  // the user's `cluster up` may be gone (Ctrl-C)
  if (f.data_dir.empty()) f.data_dir = DefaultDataDir();
  if (f.bin_dir.empty()) f.bin_dir = DefaultBinDir();
  const std::string data_dir = fs::absolute(f.data_dir).string();
  SAE_RETURN_IF_ERROR(StartCluster(f, data_dir));

  SAE_ASSIGN_OR_RETURN(ClusterRecord record, LoadClusterRecord(data_dir));
  record.supervisor.pid = ::getpid();
  record.supervisor.log = absl::StrCat(data_dir, "/logs/supervisor.log");
  record.supervisor.max_restarts = f.max_restarts;
  record.supervisor.restart_window_seconds = f.restart_window_seconds;
  record.supervisor.message.clear();
  SAE_RETURN_IF_ERROR(SaveClusterRecord(data_dir, record));
  std::printf("supervisor: pid %d restarts exited processes; its log is %s\n", ::getpid(),
              record.supervisor.log.c_str());

  // From here on the user's terminal is left alone.
  std::fflush(stdout);
  std::fflush(stderr);
  const int log_fd = ::open(record.supervisor.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const char ok = 0;
  (void)!::write(report_fd, &ok, 1);
  ::close(report_fd);
  if (log_fd >= 0) {
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    ::close(log_fd);
  }
  ::signal(SIGTERM, OnTerminationSignal);
  ::signal(SIGINT, OnTerminationSignal);
  ::signal(SIGHUP, OnTerminationSignal);
  RestartPolicy policy;
  policy.max_restarts = f.max_restarts;
  policy.window = absl::Seconds(f.restart_window_seconds);
  return ClusterSupervisor(data_dir, policy).Run(stop_supervising);
}

// The user's side: starts this saectl again as the supervisor, in a session of its own, and
// returns the exit code the start-up reported (the supervisor printed what went wrong).
int StartSupervisor() {
  // /proc files report size 0, so the command line is read as a stream.
  std::vector<std::string> args;
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  for (std::string arg; std::getline(cmdline, arg, '\0');) args.push_back(arg);
  if (args.empty()) {
    std::fprintf(stderr, "saectl: error: cannot read /proc/self/cmdline to start the supervisor\n");
    return kExitFailure;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("saectl: error: pipe");
    return kExitFailure;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();  // Ctrl-C in the user's terminal does not reach the supervisor
    if (fds[1] == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else {
      ::dup2(fds[1], 3);
    }
    ::setenv(kReportFdEnv, "3", 1);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  if (pid < 0) {
    std::perror("saectl: error: fork");
    return kExitFailure;
  }
  char code = 0;
  ssize_t n = 0;
  do {
    n = ::read(fds[0], &code, 1);
  } while (n < 0 && errno == EINTR);
  ::close(fds[0]);
  if (n == 1) return code;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "saectl: error: the cluster's supervisor %s during start-up\n",
               DescribeExit(status).c_str());
  return kExitFailure;
}

// ---- status ----

// "killed by SIGKILL 12s ago", "-" before any exit.
std::string LastExit(const Process& p) {
  if (p.last_exit.empty()) return "-";
  const double ago = absl::ToDoubleSeconds(absl::Now() - absl::FromUnixMillis(p.last_exit_ms));
  return absl::StrCat(p.last_exit, " ", HumanDuration(std::max(ago, 0.0)), " ago");
}

absl::Status ClusterStatus(ClusterFlags f) {
  if (f.data_dir.empty()) f.data_dir = DefaultDataDir();
  std::string data_dir = fs::absolute(f.data_dir).string();
  SAE_ASSIGN_OR_RETURN(ClusterRecord record, LoadClusterRecord(data_dir));
  const std::vector<Process>& processes = record.processes;
  std::map<std::string, v1::Worker> by_address;
  std::vector<v1::Run> runs;
  bool controller_up = false;
  for (const Process& p : processes) {
    if (p.binary != kControllerBinary || !IsRunning(p)) continue;
    ServerFlags server_flags;
    server_flags.server = p.address;
    server_flags.timeout_seconds = 5;
    SAE_ASSIGN_OR_RETURN(auto client, ConnectController(server_flags));
    absl::StatusOr<std::vector<v1::Worker>> workers = client->ListWorkers();
    if (workers.ok()) {
      controller_up = true;
      for (v1::Worker& w : *workers) by_address[w.address()] = w;
    }
    if (absl::StatusOr<std::vector<v1::Run>> listed = client->ListRuns(); listed.ok()) {
      runs = *listed;
    }
  }
  const bool supervised = SupervisorRunning(record.supervisor);
  std::vector<std::vector<std::string>> rows = {{"PROCESS", "PID", "STATE", "RESTARTS", "LAST EXIT",
                                                 "ADDRESS", "METRICS", "WORKER", "MEMORY", "RUN"}};
  for (const Process& p : processes) {
    auto worker = by_address.find(p.address);
    bool registered = worker != by_address.end();
    std::string state = IsRunning(p) ? "running" : "exited";
    if (state == "running" && p.binary != kControllerBinary && controller_up && !registered) {
      state = "running (not registered)";
    } else if (p.given_up) {
      state = "given up (crash loop)";
    } else if (state == "exited" && supervised) {
      state = "exited (restarting)";
    }
    rows.push_back({p.name, p.pid > 0 ? absl::StrCat(p.pid) : "-", state,
                    absl::StrCat(p.restarts), LastExit(p), p.address,
                    absl::StrCat(":", p.metrics_port),
                    registered ? worker->second.worker_id() : "-",
                    registered && worker->second.memory_bytes() > 0
                        ? HumanBytes(worker->second.memory_bytes())
                        : "-",
                    registered && !worker->second.run_id().empty()
                        ? absl::StrCat(worker->second.run_id(), " (rank ",
                                       worker->second.rank(), ")")
                        : "-"});
  }
  std::fputs(FormatTable(rows).c_str(), stdout);
  if (supervised) {
    std::printf("supervisor: pid %d, restarts exited processes (gives up on one after %d "
                "restarts within %s); log %s\n",
                record.supervisor.pid, record.supervisor.max_restarts,
                HumanDuration(record.supervisor.restart_window_seconds).c_str(),
                record.supervisor.log.c_str());
  } else {
    std::printf("supervisor: not running, exited processes stay down (start it with: saectl "
                "cluster up --data-dir %s)\n",
                data_dir.c_str());
  }
  if (!record.supervisor.message.empty()) {
    std::printf("supervisor: %s\n", record.supervisor.message.c_str());
  }
  std::map<std::string, int> counts;
  for (const v1::Run& run : runs) ++counts[client::RunStateName(run.state())];
  std::string summary;
  for (const auto& [state, count] : counts) absl::StrAppend(&summary, " ", count, " ", state);
  std::printf("runs:%s\n", summary.empty() ? " none" : summary.c_str());
  for (const Process& p : processes) {
    if (p.binary == kControllerBinary && p.metrics_port > 0) {
      std::printf("console: http://127.0.0.1:%d/\n", p.metrics_port);
    }
  }
  if (!controller_up) {
    return absl::UnavailableError(
        absl::StrCat("the controller of the cluster in ", data_dir, " is not answering"));
  }
  return absl::OkStatus();
}

// ---- down ----

absl::Status ClusterDown(ClusterFlags f) {
  if (f.data_dir.empty()) f.data_dir = DefaultDataDir();
  std::string data_dir = fs::absolute(f.data_dir).string();
  SAE_ASSIGN_OR_RETURN(ClusterRecord record, LoadClusterRecord(data_dir));
  absl::Duration grace = absl::Seconds(f.stop_seconds);
  // The supervisor first, so that it restarts nothing; then the record as it left it.
  std::string supervisor_stopped;
  if (SupervisorRunning(record.supervisor)) {
    Process supervisor;
    supervisor.pid = record.supervisor.pid;
    supervisor.binary = kSupervisorBinary;
    StopProcesses({supervisor}, grace);
    supervisor_stopped = "the supervisor and ";
    SAE_ASSIGN_OR_RETURN(record, LoadClusterRecord(data_dir));
  }
  // Workers next, so that the controller does not see them as lost and restart their runs.
  std::vector<Process> workers, controller;
  for (const Process& p : record.processes) {
    (p.binary == kControllerBinary ? controller : workers).push_back(p);
  }
  int stopped = StopProcesses(workers, grace) + StopProcesses(controller, grace);
  std::error_code error;
  fs::remove(absl::StrCat(data_dir, "/", kClusterFile), error);
  if (f.purge) fs::remove_all(data_dir, error);
  std::printf(
      "cluster down: stopped %s%d process%s%s\n", supervisor_stopped.c_str(), stopped,
      stopped == 1 ? "" : "es",
      f.purge ? absl::StrCat("; removed ", data_dir).c_str()
              : absl::StrCat("; runs and checkpoints stay in ", data_dir, "/controller").c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterClusterCommands(CLI::App& app) {
  CLI::App* cluster =
      app.add_subcommand("cluster", "A local controller and workers as processes on loopback")
          ->require_subcommand(1);
  auto flags = std::make_shared<ClusterFlags>();
  auto add_data_dir = [&](CLI::App* command) {
    command->add_option("--data-dir", flags->data_dir,
                        "Folder of the cluster's record, logs and store (default: "
                        "$SAE_CLUSTER_DIR, else ~/.sae/cluster)");
  };

  CLI::App* up = cluster->add_subcommand("up", "Start a controller and workers");
  add_data_dir(up);
  up->add_option("--activation-servers", flags->activation_servers, "Activation servers")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  up->add_option("--trainers", flags->trainers, "Trainers")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  up->add_option("--port", flags->port, "Controller port on 127.0.0.1 (0: any free port)")
      ->capture_default_str();
  up->add_option("--http-port", flags->http_port,
                 "Port of the controller's web console and /metrics (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  up->add_option("--bin-dir", flags->bin_dir,
                 "Folder with sae-controller, sae-activation-server and sae-trainer (default: "
                 "saectl's own folder)");
  up->add_option("--lease-seconds", flags->lease_seconds, "Worker lease of the controller")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  up->add_option("--threads", flags->threads,
                 "LibTorch threads of each worker (0: each worker's default, one per core)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  up->add_option("--trainer-memory-limit", flags->trainer_memory_limit,
                 "Memory runs may use on each trainer, e.g. 8GiB (sae-trainer --memory-limit; "
                 "default: what the machine has available when it starts)");
  up->add_option("--wait", flags->wait_seconds, "Seconds to wait for every worker to register")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  up->add_option("--max-restarts", flags->max_restarts,
                 "The supervisor gives up on a process that exits more often than this within "
                 "--restart-window")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  up->add_option("--restart-window", flags->restart_window_seconds,
                 "Seconds over which the supervisor counts a process's restarts")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  up->callback([flags] {
    const char* report_fd = std::getenv(kReportFdEnv);
    if (report_fd == nullptr) {
      ProcessExitCode() = StartSupervisor();
      return;
    }
    RunCommand([&] { return UpAndSupervise(*flags, std::atoi(report_fd)); });
  });

  CLI::App* status = cluster->add_subcommand("status", "Show the cluster's processes and runs");
  add_data_dir(status);
  status->callback([flags] { RunCommand([&] { return ClusterStatus(*flags); }); });

  CLI::App* down = cluster->add_subcommand("down", "Stop the cluster's processes");
  add_data_dir(down);
  down->add_option("--timeout", flags->stop_seconds,
                   "Seconds each process gets to exit after SIGTERM before SIGKILL")
      ->capture_default_str();
  down->add_flag("--purge", flags->purge, "Also delete the data folder (runs, checkpoints, logs)");
  down->callback([flags] { RunCommand([&] { return ClusterDown(*flags); }); });
}

}  // namespace sae::saectl
