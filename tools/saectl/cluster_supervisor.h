// The supervisor of a local cluster: what `saectl cluster up` becomes once the cluster is up. It
// watches the processes cluster.json records and starts one that exited again with its recorded
// command line, after a backoff; a process that exits too often (a crash loop) is given up on,
// and the supervisor says so in its log and in cluster.json. What Compose's restart policy and
// Kubernetes do for a dead container.
//
// Policy: the n-th exit of a process within the restart window is followed by a restart after
// `first_backoff` * 2^(n-1), at most `max_backoff`; the exit that would make more than
// `max_restarts` restarts within the window gives up on it (it stays down; the others go on
// being supervised). `saectl cluster up` on the cluster starts it again and supervises anew.
#ifndef SAE_TOOLS_SAECTL_CLUSTER_SUPERVISOR_H_
#define SAE_TOOLS_SAECTL_CLUSTER_SUPERVISOR_H_

#include <sys/types.h>

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tools/saectl/cluster_processes.h"

namespace sae::saectl {

struct RestartPolicy {
  int max_restarts = 5;
  absl::Duration window = absl::Seconds(60);
  absl::Duration first_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(16);
};

// The delay before restarting a process that exited `exits` times within the window (>= 1).
absl::Duration RestartBackoff(const RestartPolicy& policy, int exits);

class ClusterSupervisor {
 public:
  // Supervises the cluster recorded in `data_dir`/cluster.json, which it rewrites whenever a
  // process exits, is restarted or is given up on. Processes this process started are reaped
  // (their exit status is known); others (started by an earlier supervisor) are watched by pid.
  ClusterSupervisor(std::string data_dir, RestartPolicy policy);

  // Polls every 100 ms until `stop` is set; the processes keep running after it returns.
  // Fails only when cluster.json cannot be read or written.
  absl::Status Run(const std::atomic<bool>& stop);

  // One poll: notes exits and makes due restarts at `now`. Public for tests.
  absl::Status Poll(absl::Time now);

 private:
  struct Watch {
    std::deque<absl::Time> exits;  // within the window
    absl::Time restart_at = absl::InfiniteFuture();
  };

  // Whether `p` exited; sets `status` (-1 when unknown: not this process's child).
  static bool Exited(const Process& p, int& status);
  void NoteExit(Process& p, Watch& watch, int status, absl::Time now);
  absl::Status Restart(Process& p, Watch& watch);

  std::string data_dir_;
  RestartPolicy policy_;
  ClusterRecord record_;
  std::map<std::string, Watch> watches_;  // by process name
  std::vector<std::string> given_up_;      // give-up messages of this poll, logged after its save
};

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_CLUSTER_SUPERVISOR_H_
