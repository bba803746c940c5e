#include "tools/saectl/command.h"

#include <cstdio>
#include <exception>

namespace sae::saectl {

int& ProcessExitCode() {
  static int code = kExitOk;
  return code;
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return kExitUsage;
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitStopped;
    default:
      return kExitFailure;
  }
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
  ProcessExitCode() = ExitCodeFor(status);
}

}  // namespace sae::saectl
