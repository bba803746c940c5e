#include "tools/saectl/cluster_up.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "services/common/controller_client.h"
#include "services/common/rpc.h"
#include "tools/saectl/cluster_processes.h"
#include "tools/saectl/format.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;

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

// Stops the supervisor of `record` (a `cluster up` that stayed behind) if it runs.
void StopSupervisor(const SupervisorRecord& supervisor) {
  if (!SupervisorRunning(supervisor)) return;
  Process p;
  p.pid = supervisor.pid;
  p.binary = kSupervisorBinary;
  StopProcesses({p}, absl::Seconds(5));
}

}  // namespace

std::string DefaultDataDir() {
  if (const char* dir = std::getenv("SAE_CLUSTER_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.sae/cluster");
}

std::string DefaultBinDir() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  return error ? "." : self.parent_path().string();
}

absl::Status StartCluster(const ClusterFlags& f, const std::string& data_dir) {
  if (absl::StatusOr<ClusterRecord> existing = LoadClusterRecord(data_dir); existing.ok()) {
    bool all_running = true;
    std::string given_up;
    for (const Process& p : existing->processes) {
      all_running = all_running && IsRunning(p);
      if (p.given_up) given_up = p.name;
    }
    const SupervisorRecord& supervisor = existing->supervisor;
    if (SupervisorRunning(supervisor) && given_up.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a cluster is already up in ", data_dir, " (supervised by pid ", supervisor.pid,
          ", which restarts its exited processes); stop it with: saectl cluster down --data-dir ",
          data_dir));
    }
    if (all_running && supervisor.pid <= 0) {
      const Process& p = existing->processes.front();
      return absl::FailedPreconditionError(
          absl::StrCat("a cluster is already up in ", data_dir, " (its ", p.name, " is pid ", p.pid,
                       "); stop it with: saectl cluster down --data-dir ", data_dir));
    }
    // A supervisor that gave up on a process, or none: this `cluster up` takes over.
    StopSupervisor(supervisor);
    for (Process& p : existing->processes) p.given_up = false;
    existing->supervisor = SupervisorRecord{};
    SAE_RETURN_IF_ERROR(SaveClusterRecord(data_dir, *existing));
    return RestartExited(f, data_dir, std::move(existing->processes));
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
      if (!f.trainer_memory_limit.empty()) {
        p.args.insert(p.args.end(), {"--memory-limit", f.trainer_memory_limit});
      }
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

}  // namespace sae::saectl
