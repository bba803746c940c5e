// The processes of a local cluster (`saectl cluster`): how they are recorded in
// DATA_DIR/cluster.json (with the supervisor that restarts them), started, checked and stopped.
#ifndef SAE_TOOLS_SAECTL_CLUSTER_PROCESSES_H_
#define SAE_TOOLS_SAECTL_CLUSTER_PROCESSES_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace sae::saectl {

inline constexpr char kClusterFile[] = "cluster.json";

// One process of the cluster, as cluster.json records it.
struct Process {
  std::string name;    // "controller", "activation-server-0", "trainer-1"
  std::string binary;  // sae-controller, ...
  pid_t pid = -1;
  std::string address;
  int metrics_port = -1;
  std::string log;
  std::vector<std::string> args;  // the command line it was started with
  // Kept by the supervisor (cluster_supervisor.h).
  int restarts = 0;           // times the supervisor started it again
  std::string last_exit;      // "killed by SIGKILL", "exited 1", "" before any exit
  int64_t last_exit_ms = 0;   // when, in Unix milliseconds
  bool given_up = false;      // it crash-looped: the supervisor no longer restarts it
};

nlohmann::json ToJson(const Process& p);
Process FromJson(const nlohmann::json& j);

// The supervisor of a cluster (a `saectl cluster up` that stayed behind), as cluster.json
// records it. pid -1: none was started.
struct SupervisorRecord {
  pid_t pid = -1;
  std::string log;
  int max_restarts = 0;       // restarts of one process within `restart_window_seconds`...
  double restart_window_seconds = 0;  // ...before it gives up on that process
  std::string message;        // what it last gave up on; "" while all is well
};

// What DATA_DIR/cluster.json holds.
struct ClusterRecord {
  std::vector<Process> processes;
  SupervisorRecord supervisor;
};

// The program name the supervisor runs as (argv[0]'s file name), for IsRunning.
inline constexpr char kSupervisorBinary[] = "saectl";

// Whether the supervisor `s` runs (as saectl; a pid may be reused).
bool SupervisorRunning(const SupervisorRecord& s);

// Free loopback ports, found by binding port 0; held until all are picked so none repeats.
absl::StatusOr<std::vector<int>> FreePorts(int count);

// Starts `args` in a session of its own (so that Ctrl-C in saectl's terminal does not reach it),
// with stdout and stderr appended to `log`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args, const std::string& log);

// Whether `p` is still running as the program cluster.json says (a pid may be reused).
bool IsRunning(const Process& p);

// Whether a child this saectl started has not exited (its program may still be starting).
bool ChildRunning(pid_t pid);

// SIGTERM to every running process, SIGKILL to those still running after `grace`. Returns how
// many were running.
int StopProcesses(const std::vector<Process>& processes, absl::Duration grace);

// Stops children this saectl started (a failed `cluster up`) and reaps them.
void StopChildren(const std::vector<Process>& processes);

// The last lines of a process's log, for error messages.
std::string LogTail(const std::string& log);

// DATA_DIR/cluster.json; NotFound (saying how to start one) when there is none.
absl::StatusOr<ClusterRecord> LoadClusterRecord(const std::string& data_dir);
absl::Status SaveClusterRecord(const std::string& data_dir, const ClusterRecord& record);
// The processes alone; saving them keeps the supervisor's record as it is on disk.
absl::StatusOr<std::vector<Process>> LoadCluster(const std::string& data_dir);
absl::Status SaveCluster(const std::string& data_dir, const std::vector<Process>& processes);

// How a wait status reads: "exited 1", "killed by SIGKILL".
std::string DescribeExit(int wait_status);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_CLUSTER_PROCESSES_H_
