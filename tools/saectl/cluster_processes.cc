#include "tools/saectl/cluster_processes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::saectl {

namespace fs = std::filesystem;

nlohmann::json ToJson(const Process& p) {
  return {{"name", p.name},
          {"binary", p.binary},
          {"pid", p.pid},
          {"address", p.address},
          {"metrics_port", p.metrics_port},
          {"log", p.log},
          {"args", p.args},
          {"restarts", p.restarts},
          {"last_exit", p.last_exit},
          {"last_exit_ms", p.last_exit_ms},
          {"given_up", p.given_up}};
}

Process FromJson(const nlohmann::json& j) {
  Process p;
  p.name = j.value("name", "");
  p.binary = j.value("binary", "");
  p.pid = j.value("pid", -1);
  p.address = j.value("address", "");
  p.metrics_port = j.value("metrics_port", -1);
  p.log = j.value("log", "");
  p.args = j.value("args", std::vector<std::string>{});
  p.restarts = j.value("restarts", 0);
  p.last_exit = j.value("last_exit", "");
  p.last_exit_ms = j.value("last_exit_ms", int64_t{0});
  p.given_up = j.value("given_up", false);
  return p;
}

namespace {

nlohmann::json ToJson(const SupervisorRecord& s) {
  return {{"pid", s.pid},
          {"binary", kSupervisorBinary},
          {"log", s.log},
          {"max_restarts", s.max_restarts},
          {"restart_window_seconds", s.restart_window_seconds},
          {"message", s.message}};
}

SupervisorRecord SupervisorFromJson(const nlohmann::json& j) {
  SupervisorRecord s;
  s.pid = j.value("pid", -1);
  s.log = j.value("log", "");
  s.max_restarts = j.value("max_restarts", 0);
  s.restart_window_seconds = j.value("restart_window_seconds", 0.0);
  s.message = j.value("message", "");
  return s;
}

}  // namespace

bool SupervisorRunning(const SupervisorRecord& s) {
  Process p;
  p.pid = s.pid;
  p.binary = kSupervisorBinary;
  return IsRunning(p);
}

std::string DescribeExit(int wait_status) {
  if (WIFEXITED(wait_status)) return absl::StrCat("exited ", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    const char* name = sigabbrev_np(signal);
    return name != nullptr ? absl::StrCat("killed by SIG", name)
                           : absl::StrCat("killed by signal ", signal);
  }
  return "exited";
}

// Free loopback ports, found by binding port 0; held until all are picked so none repeats.
absl::StatusOr<std::vector<int>> FreePorts(int count) {
  std::vector<int> sockets, ports;
  absl::Status status;
  for (int i = 0; i < count && status.ok(); ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      status = absl::UnavailableError("cannot find a free loopback port");
    } else {
      ports.push_back(ntohs(address.sin_port));
    }
    if (fd >= 0) sockets.push_back(fd);
  }
  for (int fd : sockets) ::close(fd);
  SAE_RETURN_IF_ERROR(status);
  return ports;
}

// Starts `args` in a session of its own (so that Ctrl-C in saectl's terminal does not reach it),
// with stdout and stderr appended to `log`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoStatus("cannot fork to start", args[0], errno);
  if (pid == 0) {
    ::setsid();
    int null_fd = ::open("/dev/null", O_RDONLY);
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "cannot run %s\n", argv[0]);
    ::_exit(127);
  }
  return pid;
}

// Whether `p` is still running as the program cluster.json says (a pid may be reused).
bool IsRunning(const Process& p) {
  if (p.pid <= 0 || ::kill(p.pid, 0) != 0) return false;
  // A child of this saectl that exited stays a zombie until reaped.
  int status = 0;
  if (::waitpid(p.pid, &status, WNOHANG) == p.pid) return false;
  // /proc files report size 0, so they are read as streams; a zombie's cmdline is empty.
  std::ifstream cmdline(absl::StrCat("/proc/", p.pid, "/cmdline"), std::ios::binary);
  std::string argv0;
  if (!std::getline(cmdline, argv0, '\0')) return false;
  return fs::path(argv0).filename() == p.binary;
}

// Whether a child this saectl started has not exited (its program may still be starting).
bool ChildRunning(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

// SIGTERM to every running process, SIGKILL to those still running after `grace`.
int StopProcesses(const std::vector<Process>& processes, absl::Duration grace) {
  int stopped = 0;
  for (const Process& p : processes) {
    if (IsRunning(p)) {
      ::kill(p.pid, SIGTERM);
      ++stopped;
    }
  }
  absl::Time give_up = absl::Now() + grace;
  while (absl::Now() < give_up) {
    bool any = false;
    for (const Process& p : processes) any = any || IsRunning(p);
    if (!any) return stopped;
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (const Process& p : processes) {
    if (IsRunning(p)) ::kill(p.pid, SIGKILL);
  }
  return stopped;
}

// Stops children this saectl started (a failed `cluster up`) and reaps them.
void StopChildren(const std::vector<Process>& processes) {
  for (const Process& p : processes) ::kill(p.pid, SIGTERM);
  absl::Time give_up = absl::Now() + absl::Seconds(5);
  for (const Process& p : processes) {
    while (ChildRunning(p.pid) && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
    if (ChildRunning(p.pid)) ::kill(p.pid, SIGKILL);
    int status = 0;
    ::waitpid(p.pid, &status, 0);
  }
}

std::string LogTail(const std::string& log) {
  absl::StatusOr<std::string> text = ReadFile(log);
  if (!text.ok() || text->empty()) return "(empty log)";
  std::string tail = text->size() > 600 ? text->substr(text->size() - 600) : *text;
  return std::string(absl::StripTrailingAsciiWhitespace(tail));
}

absl::StatusOr<ClusterRecord> LoadClusterRecord(const std::string& data_dir) {
  std::string path = absl::StrCat(data_dir, "/", kClusterFile);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("no cluster in ", data_dir,
                                            " (start one with: saectl cluster up --data-dir ",
                                            data_dir, ")"));
  }
  SAE_RETURN_IF_ERROR(text.status());
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("processes")) {
    return absl::DataLossError(absl::StrCat(path, " is not a cluster record"));
  }
  ClusterRecord record;
  for (const nlohmann::json& p : j["processes"]) record.processes.push_back(FromJson(p));
  if (j.contains("supervisor")) record.supervisor = SupervisorFromJson(j["supervisor"]);
  return record;
}

absl::Status SaveClusterRecord(const std::string& data_dir, const ClusterRecord& record) {
  nlohmann::json j = {{"processes", nlohmann::json::array()},
                      {"supervisor", ToJson(record.supervisor)}};
  for (const Process& p : record.processes) j["processes"].push_back(ToJson(p));
  return WriteFileAtomically(absl::StrCat(data_dir, "/", kClusterFile), j.dump(2) + "\n");
}

absl::StatusOr<std::vector<Process>> LoadCluster(const std::string& data_dir) {
  SAE_ASSIGN_OR_RETURN(ClusterRecord record, LoadClusterRecord(data_dir));
  return std::move(record.processes);
}

absl::Status SaveCluster(const std::string& data_dir, const std::vector<Process>& processes) {
  ClusterRecord record;
  if (absl::StatusOr<ClusterRecord> old = LoadClusterRecord(data_dir); old.ok()) record = *old;
  record.processes = processes;
  return SaveClusterRecord(data_dir, record);
}

}  // namespace sae::saectl
