// saectl cluster up | status | down: a controller and local workers as separate processes on
// loopback, for one machine. The processes, their ports and command lines are recorded in
// DATA_DIR/cluster.json; their logs go to DATA_DIR/logs/; the controller's store lives in
// DATA_DIR/controller, so runs survive a `cluster down` and `cluster up`. Nothing supervises the
// processes: `cluster up` on a cluster whose processes partly exited starts those again with
// their recorded command lines (what an operator, or Kubernetes, does for a dead process).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"
#include "services/common/rpc.h"
#include "services/common/run_state.h"
#include "tools/saectl/cluster_processes.h"
#include "tools/saectl/command.h"
#include "tools/saectl/format.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;

constexpr char kControllerBinary[] = "sae-controller";
constexpr char kActivationServerBinary[] = "sae-activation-server";
constexpr char kTrainerBinary[] = "sae-trainer";

struct ClusterFlags {
  std::string data_dir;
  int activation_servers = 2;
  int trainers = 2;
  int port = 7070;
  int http_port = 0;  // the controller's web console and /metrics; 0: a free port
  std::string bin_dir;
  double lease_seconds = 10;
  int threads = 0;
  double wait_seconds = 120;
  double stop_seconds = 15;
  bool purge = false;
};

std::string DefaultDataDir() {
  if (const char* dir = std::getenv("SAE_CLUSTER_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.sae/cluster");
}

// The folder saectl runs from (build/bin), where the service binaries are built too.
std::string DefaultBinDir() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  return error ? "." : self.parent_path().string();
}

// ---- up ----

// Starts the controller `p` from its args and waits until it answers its health check; sets
// its pid and address (read from `port_file`).
absl::Status SpawnController(Process& p, const std::string& port_file) {
  std::error_code ignored;
  fs::remove(port_file, ignored);
  SAE_ASSIGN_OR_RETURN(p.pid, Spawn(p.args, p.log));
  absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (absl::Now() < give_up) {
    if (!ChildRunning(p.pid)) {
      return absl::InternalError(
          absl::StrCat("the controller exited at start; ", p.log, " ends with:\n", LogTail(p.log)));
    }
    absl::StatusOr<std::string> port = ReadFile(port_file);
    int number = 0;
    if (port.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*port), &number)) {
      p.address = absl::StrCat("127.0.0.1:", number);
      SAE_ASSIGN_OR_RETURN(auto channel, rpc::CreateChannel(p.address, rpc::ClientSecurity{}));
      if (rpc::CheckHealth(channel, "", absl::Seconds(5)).ok()) return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  StopChildren({p});
  return absl::DeadlineExceededError(
      absl::StrCat("the controller did not come up within 30 s; see ", p.log));
}

// Waits until the controller at `controller` lists a worker with each of `pids`, or one of the
// `children` exits, or `wait` passes.
absl::Status WaitForRegistration(const std::string& controller,
                                 const std::vector<Process>& children,
                                 const std::vector<pid_t>& pids, double wait_seconds,
                                 const std::string& data_dir) {
  ServerFlags server_flags;
  server_flags.server = controller;
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(server_flags));
  absl::Time give_up = absl::Now() + absl::Seconds(wait_seconds);
  while (true) {
    for (const Process& p : children) {
      if (!ChildRunning(p.pid)) {
        return absl::InternalError(absl::StrCat(p.name, " (", p.binary, ") exited; ", p.log,
                                                " ends with:\n", LogTail(p.log)));
      }
    }
    absl::StatusOr<std::vector<v1::Worker>> registered = client->ListWorkers();
    size_t found = 0;
    if (registered.ok()) {
      for (pid_t pid : pids) {
        found += std::any_of(registered->begin(), registered->end(),
                             [&](const v1::Worker& w) { return w.pid() == pid; });
      }
    }
    if (found == pids.size()) return absl::OkStatus();
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("only ", found, " of ", pids.size(), " workers registered within ",
                       HumanDuration(wait_seconds), "; logs in ", data_dir, "/logs"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
}

// `cluster up` on a cluster some of whose processes exited (killed, crashed): starts those
// again with the command lines they were started with, as an operator or Kubernetes would.
absl::Status RestartExited(const ClusterFlags& f, const std::string& data_dir,
                           std::vector<Process> processes) {
  std::vector<Process*> exited;
  for (Process& p : processes) {
    if (!IsRunning(p)) exited.push_back(&p);
  }
  for (Process* p : exited) {
    if (p->args.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the cluster in ", data_dir, " has exited processes but no command line for ", p->name,
          "; stop it with: saectl cluster down --data-dir ", data_dir));
    }
  }
  std::string controller_address;
  std::vector<Process> started;
  std::vector<pid_t> worker_pids;
  auto fail = [&](absl::Status status) {
    StopChildren(started);
    return status;
  };
  // The controller first, so that the workers find it.
  for (Process* p : exited) {
    if (p->binary != kControllerBinary) continue;
    std::string port_file = absl::StrCat(data_dir, "/controller.port");
    SAE_RETURN_IF_ERROR(SpawnController(*p, port_file));
    started.push_back(*p);
    std::printf("restarted %s (pid %d) on %s\n", p->name.c_str(), p->pid, p->address.c_str());
  }
  for (const Process& p : processes) {
    if (p.binary == kControllerBinary) controller_address = p.address;
  }
  for (Process* p : exited) {
    if (p->binary == kControllerBinary) continue;
    absl::StatusOr<pid_t> pid = Spawn(p->args, p->log);
    if (!pid.ok()) return fail(pid.status());
    p->pid = *pid;
    started.push_back(*p);
    worker_pids.push_back(*pid);
    std::printf("restarted %s (pid %d) on %s\n", p->name.c_str(), p->pid, p->address.c_str());
  }
  if (absl::Status saved = SaveCluster(data_dir, processes); !saved.ok()) return fail(saved);
  std::vector<Process> workers;
  for (const Process& p : started) {
    if (p.binary != kControllerBinary) workers.push_back(p);
  }
  if (absl::Status registered =
          WaitForRegistration(controller_address, workers, worker_pids, f.wait_seconds, data_dir);
      !registered.ok()) {
    return fail(registered);
  }
  std::printf("cluster up in %s: %zu process%s restarted\n", data_dir.c_str(), exited.size(),
              exited.size() == 1 ? "" : "es");
  return absl::OkStatus();
}

// Starts the controller and waits until it answers its health check.
absl::StatusOr<Process> StartController(const ClusterFlags& f, const std::string& data_dir,
                                        int metrics_port) {
  Process p;
  p.name = "controller";
  p.binary = kControllerBinary;
  p.metrics_port = metrics_port;
  p.log = absl::StrCat(data_dir, "/logs/controller.log");
  std::string port_file = absl::StrCat(data_dir, "/controller.port");
  p.args = {absl::StrCat(f.bin_dir, "/", kControllerBinary),
            "--listen",
            absl::StrCat("127.0.0.1:", f.port),
            "--data-dir",
            absl::StrCat(data_dir, "/controller"),
            "--metrics-port",
            absl::StrCat(metrics_port),
            "--lease-seconds",
            absl::StrCat(f.lease_seconds),
            "--port-file",
            port_file};
  SAE_RETURN_IF_ERROR(SpawnController(p, port_file));
  // Started again, it must listen where the workers expect it.
  p.args[2] = p.address;
  return p;
}

absl::Status ClusterUp(ClusterFlags f) {
  if (f.data_dir.empty()) f.data_dir = DefaultDataDir();
  if (f.bin_dir.empty()) f.bin_dir = DefaultBinDir();
  std::string data_dir = fs::absolute(f.data_dir).string();
  if (absl::StatusOr<std::vector<Process>> existing = LoadCluster(data_dir); existing.ok()) {
    bool all_running = true;
    for (const Process& p : *existing) all_running = all_running && IsRunning(p);
    if (all_running) {
      const Process& p = existing->front();
      return absl::FailedPreconditionError(
          absl::StrCat("a cluster is already up in ", data_dir, " (its ", p.name, " is pid ", p.pid,
                       "); stop it with: saectl cluster down --data-dir ", data_dir));
    }
    return RestartExited(f, data_dir, *std::move(existing));
  }
  std::vector<std::pair<std::string, std::string>> binaries = {{"controller", kControllerBinary}};
  if (f.activation_servers > 0) binaries.push_back({"activation server", kActivationServerBinary});
  if (f.trainers > 0) binaries.push_back({"trainer", kTrainerBinary});
  for (const auto& [what, binary] : binaries) {
    std::string path = absl::StrCat(f.bin_dir, "/", binary);
    if (::access(path.c_str(), X_OK) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no ", what, " binary at ", path, ": build it (cmake --build build --target ", binary,
          ") or point --bin-dir at the folder that has it"));
    }
  }
  SAE_RETURN_IF_ERROR(MakeDirectories(absl::StrCat(data_dir, "/logs")));

  int workers = f.activation_servers + f.trainers;
  SAE_ASSIGN_OR_RETURN(std::vector<int> ports, FreePorts(1 + 2 * workers));
  std::vector<Process> processes;
  auto fail = [&](absl::Status status) {
    StopChildren(processes);
    return status;
  };
  absl::StatusOr<Process> controller =
      StartController(f, data_dir, f.http_port > 0 ? f.http_port : ports[0]);
  if (!controller.ok()) return controller.status();
  processes.push_back(*controller);

  for (int i = 0; i < workers; ++i) {
    bool server = i < f.activation_servers;
    int index = server ? i : i - f.activation_servers;
    Process p;
    p.binary = server ? kActivationServerBinary : kTrainerBinary;
    p.name = absl::StrCat(server ? "activation-server-" : "trainer-", index);
    p.address = absl::StrCat("127.0.0.1:", ports[1 + 2 * i]);
    p.metrics_port = ports[2 + 2 * i];
    p.log = absl::StrCat(data_dir, "/logs/", p.name, ".log");
    p.args = {absl::StrCat(f.bin_dir, "/", p.binary),
              "--controller",
              controller->address,
              "--listen",
              p.address,
              "--metrics-port",
              absl::StrCat(p.metrics_port)};
    if (f.threads > 0) {
      p.args.insert(p.args.end(), {"--threads", absl::StrCat(f.threads)});
    }
    if (!server) {
      p.args.insert(p.args.end(), {"--work-dir", absl::StrCat(data_dir, "/work/", p.name)});
    }
    absl::StatusOr<pid_t> pid = Spawn(p.args, p.log);
    if (!pid.ok()) return fail(pid.status());
    p.pid = *pid;
    processes.push_back(p);
  }
  if (absl::Status saved = SaveCluster(data_dir, processes); !saved.ok()) return fail(saved);

  // Every worker registered with the controller, or the first that died, or the timeout.
  std::vector<pid_t> worker_pids;
  for (const Process& p : processes) {
    if (p.binary != kControllerBinary) worker_pids.push_back(p.pid);
  }
  if (absl::Status registered = WaitForRegistration(controller->address, processes, worker_pids,
                                                    f.wait_seconds, data_dir);
      !registered.ok()) {
    return fail(registered);
  }
  std::printf(
      "cluster up in %s: controller %s (metrics :%d), %d activation server%s, %d "
      "trainer%s; logs in %s/logs\n",
      data_dir.c_str(), controller->address.c_str(), controller->metrics_port, f.activation_servers,
      f.activation_servers == 1 ? "" : "s", f.trainers, f.trainers == 1 ? "" : "s",
      data_dir.c_str());
  std::printf("console: http://127.0.0.1:%d/\n", controller->metrics_port);
  if (controller->address != client::kDefaultControllerAddress) {
    std::printf("point saectl at it with: export %s=%s\n", kServerEnv, controller->address.c_str());
  }
  return absl::OkStatus();
}

// ---- status ----

absl::Status ClusterStatus(ClusterFlags f) {
  if (f.data_dir.empty()) f.data_dir = DefaultDataDir();
  std::string data_dir = fs::absolute(f.data_dir).string();
  SAE_ASSIGN_OR_RETURN(std::vector<Process> processes, LoadCluster(data_dir));
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
  std::vector<std::vector<std::string>> rows = {
      {"PROCESS", "PID", "STATE", "ADDRESS", "METRICS", "WORKER", "RUN"}};
  for (const Process& p : processes) {
    auto worker = by_address.find(p.address);
    bool registered = worker != by_address.end();
    std::string state = IsRunning(p) ? "running" : "exited";
    if (state == "running" && p.binary != kControllerBinary && controller_up && !registered) {
      state = "running (not registered)";
    }
    rows.push_back(
        {p.name, absl::StrCat(p.pid), state, p.address, absl::StrCat(":", p.metrics_port),
         registered ? worker->second.worker_id() : "-",
         registered && !worker->second.run_id().empty()
             ? absl::StrCat(worker->second.run_id(), " (rank ", worker->second.rank(), ")")
             : "-"});
  }
  std::fputs(FormatTable(rows).c_str(), stdout);
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
  SAE_ASSIGN_OR_RETURN(std::vector<Process> processes, LoadCluster(data_dir));
  // Workers first, so that the controller does not see them as lost and restart their runs.
  std::vector<Process> workers, controller;
  for (const Process& p : processes) {
    (p.binary == kControllerBinary ? controller : workers).push_back(p);
  }
  absl::Duration grace = absl::Seconds(f.stop_seconds);
  int stopped = StopProcesses(workers, grace) + StopProcesses(controller, grace);
  std::error_code error;
  fs::remove(absl::StrCat(data_dir, "/", kClusterFile), error);
  if (f.purge) fs::remove_all(data_dir, error);
  std::printf(
      "cluster down: stopped %d process%s%s\n", stopped, stopped == 1 ? "" : "es",
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
  up->add_option("--wait", flags->wait_seconds, "Seconds to wait for every worker to register")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  up->callback([flags] { RunCommand([&] { return ClusterUp(*flags); }); });

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
