#include "tools/saectl/cluster_supervisor.h"

#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::saectl {

absl::Duration RestartBackoff(const RestartPolicy& policy, int exits) {
  absl::Duration delay = policy.first_backoff;
  for (int i = 1; i < exits && delay < policy.max_backoff; ++i) delay *= 2;
  return std::min(delay, policy.max_backoff);
}

ClusterSupervisor::ClusterSupervisor(std::string data_dir, RestartPolicy policy)
    : data_dir_(std::move(data_dir)), policy_(policy) {}

absl::Status ClusterSupervisor::Run(const std::atomic<bool>& stop) {
  SAE_ASSIGN_OR_RETURN(record_, LoadClusterRecord(data_dir_));
  spdlog::info("supervising {} process{} of the cluster in {}: an exited process is restarted "
               "after {} (doubling, at most {}); more than {} restarts within {} give up on it",
               record_.processes.size(), record_.processes.size() == 1 ? "" : "es", data_dir_,
               absl::FormatDuration(policy_.first_backoff),
               absl::FormatDuration(policy_.max_backoff), policy_.max_restarts,
               absl::FormatDuration(policy_.window));
  while (!stop.load()) {
    SAE_RETURN_IF_ERROR(Poll(absl::Now()));
    absl::SleepFor(absl::Milliseconds(100));
  }
  spdlog::info("supervisor stopping; the cluster's processes keep running");
  return absl::OkStatus();
}

absl::Status ClusterSupervisor::Poll(absl::Time now) {
  bool changed = false;
  for (Process& p : record_.processes) {
    if (p.given_up) continue;
    Watch& watch = watches_[p.name];
    int status = -1;
    if (p.pid > 0 && Exited(p, status)) {
      NoteExit(p, watch, status, now);
      changed = true;
    } else if (p.pid <= 0 && now >= watch.restart_at) {
      SAE_RETURN_IF_ERROR(Restart(p, watch));
      changed = true;
    }
  }
  if (!changed) return absl::OkStatus();
  absl::Status saved = SaveClusterRecord(data_dir_, record_);
  // After the save: whoever reads "gave up" in the log finds it in cluster.json too.
  for (const std::string& message : given_up_) spdlog::error("{}", message);
  given_up_.clear();
  return saved;
}

bool ClusterSupervisor::Exited(const Process& p, int& status) {
  status = -1;
  int wait_status = 0;
  const pid_t reaped = ::waitpid(p.pid, &wait_status, WNOHANG);
  if (reaped == p.pid) {
    status = wait_status;
    return true;
  }
  if (reaped == 0) return false;
  // Not a child of this process (started by an earlier supervisor): watched by pid and program.
  return errno == ECHILD && !IsRunning(p);
}

void ClusterSupervisor::NoteExit(Process& p, Watch& watch, int status, absl::Time now) {
  p.last_exit = status >= 0 ? DescribeExit(status) : "exited (status unknown)";
  p.last_exit_ms = absl::ToUnixMillis(now);
  spdlog::warn("{} (pid {}) {}", p.name, p.pid, p.last_exit);
  p.pid = -1;
  while (!watch.exits.empty() && watch.exits.front() <= now - policy_.window) {
    watch.exits.pop_front();
  }
  watch.exits.push_back(now);
  const int exits = static_cast<int>(watch.exits.size());
  if (exits > policy_.max_restarts) {
    p.given_up = true;
    record_.supervisor.message = absl::StrCat(
        "gave up on ", p.name, ": it exited ", exits, " times within ",
        absl::FormatDuration(policy_.window), " (last: ", p.last_exit, "); see ", p.log,
        ", fix the cause, then start it again with: saectl cluster up --data-dir ", data_dir_);
    given_up_.push_back(record_.supervisor.message);  // logged once the record says so
    return;
  }
  const absl::Duration delay = RestartBackoff(policy_, exits);
  watch.restart_at = now + delay;
  spdlog::info("restarting {} in {} (exit {} of at most {} within {})", p.name,
               absl::FormatDuration(delay), exits, policy_.max_restarts + 1,
               absl::FormatDuration(policy_.window));
}

absl::Status ClusterSupervisor::Restart(Process& p, Watch& watch) {
  {
    std::ofstream log(p.log, std::ios::app);
    log << "---- saectl cluster supervisor: restarting " << p.name << " (it " << p.last_exit
        << ") ----\n";
  }
  absl::StatusOr<pid_t> pid = Spawn(p.args, p.log);
  if (!pid.ok()) {
    spdlog::error("cannot restart {}: {}; trying again", p.name, pid.status().ToString());
    watch.restart_at = absl::Now() + policy_.max_backoff;
    return absl::OkStatus();
  }
  p.pid = *pid;
  ++p.restarts;
  watch.restart_at = absl::InfiniteFuture();
  spdlog::info("restarted {} (pid {}); {} restart{} so far", p.name, p.pid, p.restarts,
               p.restarts == 1 ? "" : "s");
  return absl::OkStatus();
}

}  // namespace sae::saectl
