// SIGTERM and SIGINT as events a service's main loop waits for, instead of handlers that
// interrupt arbitrary code: BlockTerminationSignals() first thing in main (before any thread
// starts, so every thread inherits the mask), then WaitForTerminationSignal() where it suits.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_TERMINATION_SIGNALS_H_
#define SAE_SERVICES_ACTIVATION_SERVER_TERMINATION_SIGNALS_H_

#include "absl/time/time.h"

namespace sae::service {

// Blocks SIGTERM and SIGINT in the calling thread and the threads it starts afterwards.
void BlockTerminationSignals();

// Waits at most `timeout` for SIGTERM or SIGINT; returns the signal number, or 0 on timeout.
int WaitForTerminationSignal(absl::Duration timeout);

}  // namespace sae::service

#endif  // SAE_SERVICES_ACTIVATION_SERVER_TERMINATION_SIGNALS_H_
