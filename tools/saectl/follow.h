// Following a run until it ends (`submit -f`, `logs -f`, `wait`): its events as they happen,
// a progress bar on a terminal, and Ctrl-C that detaches without touching the run.
#ifndef SAE_TOOLS_SAECTL_FOLLOW_H_
#define SAE_TOOLS_SAECTL_FOLLOW_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/common/controller_client.h"

namespace sae::saectl {

// While alive, SIGINT (Ctrl-C) cancels `client`'s streams instead of ending saectl, so that a
// follow returns Cancelled and saectl says how to follow again. The run is never touched.
class InterruptDetacher {
 public:
  explicit InterruptDetacher(client::ControllerClient* client);
  InterruptDetacher(const InterruptDetacher&) = delete;
  InterruptDetacher& operator=(const InterruptDetacher&) = delete;
  // Restores the previous SIGINT handling.
  ~InterruptDetacher();

  bool interrupted() const;

 private:
  client::ControllerClient* const client_;
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

struct FollowOptions {
  // Print each event as a `logs` line on stdout.
  bool print_events = true;
  // Redraw a one-line progress bar on stdout (use when it is a terminal).
  bool progress_bar = false;
  // Give up then (DeadlineExceeded).
  absl::Time deadline = absl::InfiniteFuture();
};

// Follows the run's events after `after_sequence` until the event of its final state, and
// returns the run as it ended. Cancelled (with the command to follow again) on Ctrl-C;
// DeadlineExceeded when options.deadline passes; the client's errors otherwise.
absl::StatusOr<v1::Run> FollowRun(client::ControllerClient& client, const std::string& run_id,
                                  uint64_t after_sequence, const FollowOptions& options);

// What saectl exits with for a run in a final state: OK for SUCCEEDED, Aborted (exit code 1) for
// FAILED, Cancelled (exit code 3) for STOPPED, each naming the run and its message.
absl::Status FinalRunStatus(const v1::Run& run);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_FOLLOW_H_
