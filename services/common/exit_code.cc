#include "services/common/exit_code.h"

namespace sae::service {

bool IsUsersMistake(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return true;
    default:
      return false;
  }
}

int ExitCodeFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (IsUsersMistake(status)) return kExitUsage;
  if (absl::IsCancelled(status) || absl::IsDeadlineExceeded(status)) return kExitStopped;
  return kExitFailure;
}

}  // namespace sae::service
