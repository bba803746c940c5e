#include "services/common/termination_signals.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/time/clock.h"

namespace sae::service {
namespace {

// Lock-free, so the handler may touch it.
std::atomic<int> caught{0};
static_assert(std::atomic<int>::is_always_lock_free);

void Record(int signal) { caught.store(signal); }

}  // namespace

void CatchTerminationSignals() {
  struct sigaction action = {};
  action.sa_handler = Record;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

int WaitForTerminationSignal(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (const int signal = caught.exchange(0); signal != 0) return signal;
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(std::min(left, absl::Milliseconds(50))));
  }
}

}  // namespace sae::service
