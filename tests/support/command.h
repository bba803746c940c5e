// Test support: running a command line (saectl's, chromium's) as a user would, bounded in time.
#ifndef SAE_TESTS_SUPPORT_COMMAND_H_
#define SAE_TESTS_SUPPORT_COMMAND_H_

#include <string>

namespace sae::support {

// What a command did: its exit code (-1 when it was killed) and what it wrote.
struct CommandResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs command lines through the shell under `timeout -s KILL`, stdin from /dev/null, stdout and
// stderr captured in numbered files of `scratch_dir` (kept there, for a look after a failure).
class CommandRunner {
 public:
  explicit CommandRunner(std::string scratch_dir) : scratch_dir_(std::move(scratch_dir)) {}

  // Runs `command` (split by the shell), killed after `timeout_seconds`.
  CommandResult Shell(const std::string& command, int timeout_seconds);

  // Runs <build>/bin/saectl with `args` (split by the shell), killed after `timeout_seconds`.
  CommandResult Saectl(const std::string& args, int timeout_seconds);

  // How many commands ran so far (a fresh number for a file of the caller's).
  int calls() const { return calls_; }

 private:
  std::string scratch_dir_;
  int calls_ = 0;
};

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_COMMAND_H_
