#include "support/command.h"

#include <sys/wait.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "support/binaries.h"
#include "support/child_process.h"

namespace sae::support {

CommandResult CommandRunner::Shell(const std::string& command, int timeout_seconds) {
  const std::string out = absl::StrCat(scratch_dir_, "/out.", calls_);
  const std::string err = absl::StrCat(scratch_dir_, "/err.", calls_++);
  const std::string line = absl::StrCat("timeout -s KILL ", timeout_seconds, " ", command, " >",
                                        out, " 2>", err, " </dev/null");
  const int status = std::system(line.c_str());
  CommandResult result;
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadWholeFile(out);
  result.err = ReadWholeFile(err);
  return result;
}

CommandResult CommandRunner::Saectl(const std::string& args, int timeout_seconds) {
  return Shell(SaectlPath() + " " + args, timeout_seconds);
}

}  // namespace sae::support
