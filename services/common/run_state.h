// Names of the enums of proto/sae/v1 as users read them (saectl, events, logs).
#ifndef SAE_SERVICES_COMMON_RUN_STATE_H_
#define SAE_SERVICES_COMMON_RUN_STATE_H_

#include <string>

#include "sae/v1/common.pb.h"

namespace sae::client {

// "PENDING", "RUNNING", "RESTARTING", "SUCCEEDED", "FAILED", "STOPPED" ("UNKNOWN" otherwise).
std::string RunStateName(v1::RunState state);

// True for SUCCEEDED, FAILED and STOPPED: the states a run never leaves.
bool IsFinalState(v1::RunState state);

// "activation server", "trainer".
std::string RoleName(v1::WorkerRole role);

}  // namespace sae::client

#endif  // SAE_SERVICES_COMMON_RUN_STATE_H_
