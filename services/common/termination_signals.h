// SIGTERM and SIGINT as events a service's main loop waits for: CatchTerminationSignals() at
// the start of main, then WaitForTerminationSignal() where it suits. The handler only records
// the signal (whichever thread the kernel picks to run it, including threads LibTorch or gRPC
// started before main), so no code is interrupted half-way.
#ifndef SAE_SERVICES_COMMON_TERMINATION_SIGNALS_H_
#define SAE_SERVICES_COMMON_TERMINATION_SIGNALS_H_

#include "absl/time/time.h"

namespace sae::service {

// Installs the SIGTERM / SIGINT handler.
void CatchTerminationSignals();

// Waits at most `timeout` for SIGTERM or SIGINT; returns the signal number (and forgets it),
// or 0 when none came.
int WaitForTerminationSignal(absl::Duration timeout);

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_TERMINATION_SIGNALS_H_
