#include "tools/saectl/follow.h"

#include <signal.h>

#include <cstdio>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"
#include "tools/saectl/run_output.h"

namespace sae::saectl {
namespace {

std::atomic<bool> g_interrupted{false};
struct sigaction g_previous_action;

void OnInterrupt(int) { g_interrupted.store(true); }

constexpr int kBarWidth = 24;

}  // namespace

InterruptDetacher::InterruptDetacher(client::ControllerClient* client) : client_(client) {
  g_interrupted.store(false);
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &g_previous_action);
  // A signal handler may only set the flag; this thread does the cancelling.
  watcher_ = std::thread([this] {
    while (!done_.load()) {
      if (g_interrupted.load()) {
        client_->Cancel();
        return;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
}

InterruptDetacher::~InterruptDetacher() {
  done_.store(true);
  watcher_.join();
  sigaction(SIGINT, &g_previous_action, nullptr);
}

bool InterruptDetacher::interrupted() const { return g_interrupted.load(); }

absl::StatusOr<v1::Run> FollowRun(client::ControllerClient& client, const std::string& run_id,
                                  uint64_t after_sequence, const FollowOptions& options) {
  InterruptDetacher detacher(&client);
  std::mutex output;
  bool bar_shown = false;
  std::atomic<bool> events_done{false};
  absl::Status watched;
  std::thread events([&] {
    watched = client.WatchRun(
        run_id, after_sequence, /*follow=*/true,
        [&](const v1::RunEvent& event) {
          if (options.print_events) {
            std::lock_guard<std::mutex> lock(output);
            if (bar_shown) std::fputs("\r\033[K", stdout);
            std::printf("%s\n", EventLine(event).c_str());
            std::fflush(stdout);
          }
          return true;
        },
        options.deadline);
    events_done.store(true);
  });
  while (options.progress_bar && !events_done.load()) {
    absl::StatusOr<v1::Run> run = client.GetRun(run_id);
    if (run.ok()) {
      std::lock_guard<std::mutex> lock(output);
      std::printf("\r\033[K%s", ProgressLine(*run, kBarWidth).c_str());
      std::fflush(stdout);
      bar_shown = true;
    }
    for (int i = 0; i < 10 && !events_done.load(); ++i) absl::SleepFor(absl::Milliseconds(50));
  }
  events.join();
  if (bar_shown) {
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
  }
  if (detacher.interrupted()) {
    return absl::CancelledError(absl::StrCat("detached from run ", run_id,
                                             "; it keeps running (follow it again with: saectl "
                                             "logs ",
                                             run_id, " -f)"));
  }
  if (!watched.ok()) return watched;
  return client.GetRun(run_id);
}

absl::Status FinalRunStatus(const v1::Run& run) {
  std::string what = absl::StrCat("run ", run.run_id(), " ", client::RunStateName(run.state()));
  if (!run.message().empty()) absl::StrAppend(&what, ": ", run.message());
  switch (run.state()) {
    case v1::RUN_STATE_SUCCEEDED:
      return absl::OkStatus();
    case v1::RUN_STATE_FAILED:
      return absl::AbortedError(what);
    case v1::RUN_STATE_STOPPED:
      return absl::CancelledError(what);
    default:
      return absl::UnknownError(absl::StrCat(what, " (not a final state)"));
  }
}

}  // namespace sae::saectl
