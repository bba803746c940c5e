// saectl cluster up: starting a local cluster's controller and workers on loopback, or the
// exited processes of a cluster that is recorded already (cluster_processes.h has the record).
// The `cluster up` process that does this stays behind as the cluster's supervisor
// (cluster_supervisor.h); cluster_command.cc wires the two together.
#ifndef SAE_TOOLS_SAECTL_CLUSTER_UP_H_
#define SAE_TOOLS_SAECTL_CLUSTER_UP_H_

#include <string>

#include "absl/status/status.h"

namespace sae::saectl {

inline constexpr char kControllerBinary[] = "sae-controller";
inline constexpr char kActivationServerBinary[] = "sae-activation-server";
inline constexpr char kTrainerBinary[] = "sae-trainer";

// The flags of `saectl cluster up | status | down`.
struct ClusterFlags {
  std::string data_dir;
  int activation_servers = 2;
  int trainers = 2;
  int port = 7070;
  int http_port = 0;  // the controller's web console and /metrics; 0: a free port
  std::string bin_dir;
  double lease_seconds = 10;
  int threads = 0;
  std::string trainer_memory_limit;  // sae-trainer --memory-limit; "" leaves it out
  double wait_seconds = 120;
  int max_restarts = 5;  // the supervisor's restarts of one process within the window
  double restart_window_seconds = 60;
  double stop_seconds = 15;
  bool purge = false;
};

// $SAE_CLUSTER_DIR, else ~/.sae/cluster.
std::string DefaultDataDir();

// The folder saectl runs from (build/bin), where the service binaries are built too.
std::string DefaultBinDir();

// Starts the cluster of `f` in `data_dir` (absolute) and returns once every worker registered,
// printing what it started. When `data_dir` records a cluster already: FailedPrecondition
// ("already up") when its supervisor runs and has given up on nothing, or when it has no
// supervisor and every process runs; otherwise it stops that supervisor and starts the exited
// processes again with their recorded command lines. The processes it starts are this
// process's children (so that a supervisor in this process learns how they exit).
absl::Status StartCluster(const ClusterFlags& f, const std::string& data_dir);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_CLUSTER_UP_H_
