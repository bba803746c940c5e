// Test support: a local cluster that `saectl cluster up` starts (the real controller and
// workers, or stand-ins) and its supervisor keeps running, driven through saectl as a user
// drives it, and what the tests that use one share: the reaper, process kills, log waits, the
// gpt2-tiny run they train.
#ifndef SAE_TESTS_SUPPORT_LOCAL_CLUSTER_H_
#define SAE_TESTS_SUPPORT_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "support/command.h"

namespace sae::support {

// The flags of `saectl cluster up`.
struct LocalClusterOptions {
  std::string bin_dir;  // --bin-dir; "" for <build>/bin
  int activation_servers = 1;
  int trainers = 1;
  double lease_seconds = 2;
  int threads = 1;  // --threads; 0 leaves the flag out
  std::string trainer_memory_limit;  // --trainer-memory-limit; "" leaves the flag out
  int wait_seconds = 60;
  int max_restarts = 0;      // --max-restarts of the supervisor; 0 leaves the flag out
  int timeout_seconds = 90;  // of the saectl call
};

class LocalCluster {
 public:
  // A cluster with its data in `data_dir` (made by `cluster up`), whose saectl calls go through
  // `runner`. With `reaper`, a child process outlives this test process only to kill the
  // cluster it leaves behind, its supervisor first (the test was killed by a timeout, say):
  // `cluster up` starts the supervisor and the workers in sessions of their own, so nothing
  // else would.
  LocalCluster(std::string data_dir, CommandRunner& runner, bool reaper = true);
  ~LocalCluster();  // ends the reaper; the cluster itself ends with Down
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const std::string& data_dir() const { return data_dir_; }

  // `saectl cluster up --port 0` with `options`. When it printed SAECTL_SERVER=ADDRESS, the
  // variable is set in this process, so that later saectl calls reach the controller.
  CommandResult Up(const LocalClusterOptions& options);

  // The address after SAECTL_SERVER= in `up`'s output, or "" when there is none.
  static std::string ServerAddress(const CommandResult& up);

  // `saectl cluster up` on the existing cluster: starts its exited processes again (those its
  // supervisor gave up on) and supervises them anew.
  CommandResult UpAgain(int timeout_seconds = 90);

  // `saectl cluster down --timeout down_timeout_seconds`, then SIGKILL to the supervisor and
  // each process cluster.json recorded that still runs; their records go to `survivors`.
  CommandResult Down(int down_timeout_seconds, int timeout_seconds,
                     std::vector<std::string>* survivors);

  // cluster.json's "processes" (an empty array when there is no record).
  nlohmann::json Processes() const;

  // cluster.json's record of process `name` ({} when there is none).
  nlohmann::json Process(const std::string& name) const;

  // cluster.json's "supervisor" ({} when there is none).
  nlohmann::json Supervisor() const;

  // Polls cluster.json every 20 ms until the supervisor restarted process `name` at least
  // `restarts` times in all and the restarted process runs; a failure of the current test after
  // `seconds`. Returns the process's record.
  nlohmann::json WaitForRestart(const std::string& name, int restarts, int seconds);

  // SIGKILL to the cluster's process `name` ("trainer-1", "controller", ...); returns once it
  // is gone. A failure of the current test when there is no such process or it survives.
  void KillProcess(const std::string& name);

  // SIGSTOP to the cluster's process `name`; returns once every thread of it is stopped (state
  // "T" in /proc), so that nothing it logs or sends moves until ThawProcess. A failure of the
  // current test when there is no such process.
  void FreezeProcess(const std::string& name);
  // SIGCONT to a process FreezeProcess stopped.
  void ThawProcess(const std::string& name);

  // The log file of the cluster's process `name`, as it is now.
  std::string ProcessLog(const std::string& name) const;

  // Polls the log file of the cluster's process `name` ("trainer-0", "supervisor", ...) every
  // 20 ms until it
  // contains `text`; a failure of the current test after `seconds`. Far quicker than
  // `saectl logs` (a process start per poll), for a test that must act while a run is at a
  // given point.
  void WaitForProcessLog(const std::string& name, const std::string& text, int seconds);

  // The last `tail_bytes` of every process's log, to stderr.
  void DumpLogs(size_t tail_bytes) const;

 private:
  void StartReaper();

  std::string data_dir_;
  CommandRunner& runner_;
  pid_t reaper_ = -1;
};

// The gpt2-tiny files the cluster tests train on, in `dir`: model/ (saectl model init --preset
// gpt2-tiny --seed 0) and tokens.bin (`documents` random documents, WriteRandomTokens with
// `seed`).
absl::Status WriteGpt2TinyRunFiles(CommandRunner& runner, const std::string& dir, int documents,
                                   uint32_t seed);

// The run.yaml text of a gpt2-tiny run on the files of `dir` of `steps` steps of 256 tokens,
// keys in alphabetical order; `keys` adds keys or replaces the defaults.
std::string Gpt2TinyRunYaml(const std::string& dir, int64_t steps,
                            const std::map<std::string, std::string>& keys = {});

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_LOCAL_CLUSTER_H_
