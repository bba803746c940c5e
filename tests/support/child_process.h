// Test support: child processes that never outlive the test, and waiting on what they write.
#ifndef SAE_TESTS_SUPPORT_CHILD_PROCESS_H_
#define SAE_TESTS_SUPPORT_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace sae::support {

// The whole text of the file at `path`; "" when it cannot be read.
std::string ReadWholeFile(const std::string& path);

// The path of executable `name` in PATH or /usr/bin, or "" when there is none.
std::string FindExecutable(const std::string& name);

// Polls `ready` every 20 ms for at most `timeout`; true once it returned true.
bool Eventually(const std::function<bool()>& ready, std::chrono::milliseconds timeout);

// A child process (argv[0] is a path, not looked up in PATH) with stdout and stderr appended to
// a log file. Stopped when this object is destroyed, and killed by the kernel when the test
// process dies first (PR_SET_PDEATHSIG), so it never outlives a test.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const { return ReadWholeFile(log_path_); }

  // Whether it has exited (and is reaped); the exit status is then in exit_status().
  bool Exited();

  // Waits for the exit for at most `timeout`; true when it exited.
  bool WaitForExit(std::chrono::milliseconds timeout);

  // The exit code, or -1 while running / when killed by a signal (then signal() says which).
  int exit_code() const;
  int signal() const;

  // SIGKILL at once, reaped.
  void KillHard();

  // SIGTERM, then SIGKILL after `grace`; returns once it is reaped.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::string log_path_;
};

// The command line of process `pid` (NUL-separated arguments); empty when it is gone or a
// zombie.
std::string Cmdline(int pid);

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_CHILD_PROCESS_H_
