#include "tools/saectl/command.h"

#include <cstdio>
#include <exception>

#include "services/common/exit_code.h"

namespace sae::saectl {

int& ProcessExitCode() {
  static int code = kExitOk;
  return code;
}

void RunCommand(const std::function<absl::Status()>& body) {
  absl::Status status;
  try {
    status = body();
  } catch (const std::exception& e) {
    status = absl::InternalError(e.what());
  }
  if (!status.ok()) {
    std::fprintf(stderr, "saectl: error: %s\n", std::string(status.message()).c_str());
  }
  ProcessExitCode() = service::ExitCodeFor(status);
}

}  // namespace sae::saectl
