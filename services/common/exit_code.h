// How a status becomes a process's exit code, the same for saectl and every service binary:
//   0 success; 1 a failure (I/O, RPC, internal, a peer gone); 2 the user's mistake (a bad flag,
//   run.yaml or file; repeating the same command fails the same way); 3 stopped or timed out.
#ifndef SAE_SERVICES_COMMON_EXIT_CODE_H_
#define SAE_SERVICES_COMMON_EXIT_CODE_H_

#include "absl/status/status.h"

namespace sae::service {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitStopped = 3;

// The user's mistake, which a retry or a restart would repeat: InvalidArgument, NotFound,
// AlreadyExists, FailedPrecondition and OutOfRange. Workers report such a failure as fatal
// instead of restarting the run.
bool IsUsersMistake(const absl::Status& status);

// kExitOk for OK; kExitUsage for IsUsersMistake; kExitStopped for Cancelled and
// DeadlineExceeded; kExitFailure otherwise.
int ExitCodeFor(const absl::Status& status);

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_EXIT_CODE_H_
