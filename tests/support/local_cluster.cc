#include "support/local_cluster.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <chrono>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/random_tokens.h"

namespace sae::support {
namespace {

nlohmann::json ReadRecord(const std::string& data_dir) {
  const std::string record = ReadWholeFile(data_dir + "/cluster.json");
  nlohmann::json j = nlohmann::json::parse(record, nullptr, false);
  return j.is_discarded() ? nlohmann::json::object() : j;
}

nlohmann::json ReadProcesses(const std::string& data_dir) {
  nlohmann::json j = ReadRecord(data_dir);
  if (!j.contains("processes")) return nlohmann::json::array();
  return j["processes"];
}

// SIGKILL to `process` (a cluster.json record) if it still runs its program; whether it ran.
bool KillRecorded(const nlohmann::json& process) {
  const int pid = process.value("pid", -1);
  if (pid > 0 && absl::StrContains(Cmdline(pid), process.value("binary", "?"))) {
    ::kill(pid, SIGKILL);
    return true;
  }
  return false;
}

// SIGKILL to the supervisor and every process cluster.json in `data_dir` records that still
// runs its program; the supervisor first, so that it restarts none of them.
void KillCluster(const std::string& data_dir) {
  const nlohmann::json record = ReadRecord(data_dir);
  if (record.contains("supervisor") && KillRecorded(record["supervisor"])) {
    const int pid = record["supervisor"].value("pid", -1);
    for (int i = 0; i < 500 && !Cmdline(pid).empty(); ++i) ::usleep(10000);
  }
  for (const auto& process : ReadProcesses(data_dir)) KillRecorded(process);
}

}  // namespace

LocalCluster::LocalCluster(std::string data_dir, CommandRunner& runner, bool reaper)
    : data_dir_(std::move(data_dir)), runner_(runner) {
  if (reaper) StartReaper();
}

LocalCluster::~LocalCluster() {
  if (reaper_ > 0) {
    ::kill(reaper_, SIGKILL);
    ::waitpid(reaper_, nullptr, 0);
  }
}

void LocalCluster::StartReaper() {
  const std::string data_dir = data_dir_;
  const pid_t parent = ::getpid();
  reaper_ = ::fork();
  if (reaper_ != 0) return;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGUSR1);
  if (::getppid() == parent) {
    int signal = 0;
    sigwait(&set, &signal);
  }
  KillCluster(data_dir);
  ::_exit(0);
}

CommandResult LocalCluster::Up(const LocalClusterOptions& options) {
  std::string args = absl::StrCat(
      "cluster up --data-dir ", data_dir_, " --bin-dir ",
      options.bin_dir.empty() ? BinDir() : options.bin_dir, " --port 0 --activation-servers ",
      options.activation_servers, " --trainers ", options.trainers, " --lease-seconds ",
      options.lease_seconds);
  if (options.threads > 0) absl::StrAppend(&args, " --threads ", options.threads);
  if (options.max_restarts > 0) absl::StrAppend(&args, " --max-restarts ", options.max_restarts);
  if (!options.trainer_memory_limit.empty()) {
    absl::StrAppend(&args, " --trainer-memory-limit ", options.trainer_memory_limit);
  }
  absl::StrAppend(&args, " --wait ", options.wait_seconds);
  CommandResult up = runner_.Saectl(args, options.timeout_seconds);
  const std::string address = ServerAddress(up);
  if (!address.empty()) ::setenv("SAECTL_SERVER", address.c_str(), 1);
  return up;
}

std::string LocalCluster::ServerAddress(const CommandResult& up) {
  const size_t at = up.out.find("SAECTL_SERVER=");
  if (at == std::string::npos) return "";
  return std::string(
      absl::StripAsciiWhitespace(up.out.substr(at + 14, up.out.find('\n', at) - at - 14)));
}

CommandResult LocalCluster::UpAgain(int timeout_seconds) {
  return runner_.Saectl(absl::StrCat("cluster up --data-dir ", data_dir_, " --wait 60"),
                        timeout_seconds);
}

CommandResult LocalCluster::Down(int down_timeout_seconds, int timeout_seconds,
                                 std::vector<std::string>* survivors) {
  nlohmann::json processes = Processes();
  const nlohmann::json supervisor = Supervisor();
  if (!supervisor.empty()) processes.push_back(supervisor);
  CommandResult down = runner_.Saectl(
      absl::StrCat("cluster down --data-dir ", data_dir_, " --timeout ", down_timeout_seconds),
      timeout_seconds);
  // And the record as the supervisor left it, when cluster down failed to remove it.
  for (const auto& process : Processes()) processes.push_back(process);
  for (const auto& process : processes) {
    const int pid = process.value("pid", -1);
    if (pid > 0 && !Cmdline(pid).empty()) {
      if (survivors != nullptr) survivors->push_back(process.dump());
      ::kill(pid, SIGKILL);
    }
  }
  return down;
}

nlohmann::json LocalCluster::Processes() const { return ReadProcesses(data_dir_); }

nlohmann::json LocalCluster::Process(const std::string& name) const {
  for (const auto& process : Processes()) {
    if (process.value("name", "") == name) return process;
  }
  return nlohmann::json::object();
}

nlohmann::json LocalCluster::Supervisor() const {
  nlohmann::json record = ReadRecord(data_dir_);
  return record.contains("supervisor") ? record["supervisor"] : nlohmann::json::object();
}

nlohmann::json LocalCluster::WaitForRestart(const std::string& name, int restarts, int seconds) {
  nlohmann::json process;
  const bool restarted = Eventually(
      [&] {
        process = Process(name);
        const int pid = process.value("pid", -1);
        return process.value("restarts", 0) >= restarts && pid > 0 && !Cmdline(pid).empty();
      },
      std::chrono::seconds(seconds));
  if (!restarted) {
    ADD_FAILURE() << name << " was not restarted " << restarts << " time(s): " << process.dump()
                  << "\nsupervisor log:\n" << ReadWholeFile(data_dir_ + "/logs/supervisor.log");
  }
  return process;
}

void LocalCluster::KillProcess(const std::string& name) {
  const nlohmann::json processes = Processes();
  for (const auto& process : processes) {
    if (process.value("name", "") != name) continue;
    const int pid = process.value("pid", -1);
    ASSERT_EQ(::kill(pid, SIGKILL), 0) << name;
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (!Cmdline(pid).empty() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(Cmdline(pid).empty()) << name << " survived SIGKILL";
    return;
  }
  FAIL() << "no process " << name << " in " << processes.dump();
}

namespace {

// The state letter of a /proc stat file ('R', 'S', 'T', ...); '?' when the process or thread
// is gone.
char StateIn(const std::string& stat_path) {
  const std::string stat = ReadWholeFile(stat_path);
  const size_t name_end = stat.rfind(')');  // the command name may hold spaces and parentheses
  return name_end == std::string::npos || name_end + 2 >= stat.size() ? '?'
                                                                      : stat[name_end + 2];
}

char ProcessState(int pid) { return StateIn(absl::StrCat("/proc/", pid, "/stat")); }

}  // namespace

void LocalCluster::FreezeProcess(const std::string& name) {
  const int pid = Process(name).value("pid", -1);
  ASSERT_GT(pid, 0) << "no process " << name << " in " << Processes().dump();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0) << name;
  // A group stop reaches each thread on its own: wait for all of them.
  auto all_stopped = [pid] {
    std::error_code error;
    int threads = 0;
    for (const auto& task :
         std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), error)) {
      const char state = StateIn(task.path().string() + "/stat");
      if (state == '?') continue;  // the thread exited
      if (state != 'T' && state != 't') return false;
      ++threads;
    }
    return !error && threads > 0;
  };
  const bool stopped = Eventually(all_stopped, std::chrono::seconds(10));
  ASSERT_TRUE(stopped) << name << " (pid " << pid << ") did not stop on SIGSTOP: state "
                       << ProcessState(pid);
}

void LocalCluster::ThawProcess(const std::string& name) {
  const int pid = Process(name).value("pid", -1);
  ASSERT_GT(pid, 0) << "no process " << name;
  ASSERT_EQ(::kill(pid, SIGCONT), 0) << name;
}

std::string LocalCluster::ProcessLog(const std::string& name) const {
  return ReadWholeFile(data_dir_ + "/logs/" + name + ".log");
}

void LocalCluster::WaitForProcessLog(const std::string& name, const std::string& text,
                                     int seconds) {
  const std::string path = data_dir_ + "/logs/" + name + ".log";
  const absl::Time give_up = absl::Now() + absl::Seconds(seconds);
  while (absl::Now() < give_up) {
    if (absl::StrContains(ReadWholeFile(path), text)) return;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ADD_FAILURE() << name << " never logged \"" << text << "\" in " << path;
}

void LocalCluster::DumpLogs(size_t tail_bytes) const {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir_ + "/logs", error)) {
    std::string text = ReadWholeFile(entry.path().string());
    if (text.size() > tail_bytes) text = "...\n" + text.substr(text.size() - tail_bytes);
    std::fprintf(stderr, "==== %s ====\n%s\n", entry.path().c_str(), text.c_str());
  }
}

absl::Status WriteGpt2TinyRunFiles(CommandRunner& runner, const std::string& dir, int documents,
                                   uint32_t seed) {
  CommandResult init =
      runner.Saectl("model init --preset gpt2-tiny --seed 0 --out " + dir + "/model", 120);
  if (init.code != 0) {
    return absl::InternalError(absl::StrCat("saectl model init exited ", init.code, ": ",
                                            init.err));
  }
  return WriteRandomTokens(dir + "/tokens.bin", documents, seed);
}

std::string Gpt2TinyRunYaml(const std::string& dir, int64_t steps,
                            const std::map<std::string, std::string>& keys) {
  std::map<std::string, std::string> all = {{"model_path", dir + "/model"},
                                            {"dataset_path", dir + "/tokens.bin"},
                                            {"hook_point", "blocks.1.hook_resid_pre"},
                                            {"context_size", "16"},
                                            {"expansion_factor", "4"},
                                            {"train_batch_size", "256"},
                                            {"total_training_tokens", absl::StrCat(steps * 256)},
                                            {"n_batches_in_buffer", "8"},
                                            {"store_batch_size", "4"},
                                            {"lr", "0.001"},
                                            {"lr_warm_up_steps", "2"},
                                            {"b_dec_init_method", "mean"}};
  for (const auto& [key, value] : keys) all[key] = value;
  std::string yaml;
  for (const auto& [key, value] : all) absl::StrAppend(&yaml, key, ": ", value, "\n");
  return yaml;
}

}  // namespace sae::support
