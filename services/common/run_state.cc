#include "services/common/run_state.h"

namespace sae::client {

std::string RunStateName(v1::RunState state) {
  switch (state) {
    case v1::RUN_STATE_PENDING:
      return "PENDING";
    case v1::RUN_STATE_RUNNING:
      return "RUNNING";
    case v1::RUN_STATE_RESTARTING:
      return "RESTARTING";
    case v1::RUN_STATE_SUCCEEDED:
      return "SUCCEEDED";
    case v1::RUN_STATE_FAILED:
      return "FAILED";
    case v1::RUN_STATE_STOPPED:
      return "STOPPED";
    default:
      return "UNKNOWN";
  }
}

bool IsFinalState(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_STOPPED;
}

std::string RoleName(v1::WorkerRole role) {
  switch (role) {
    case v1::WORKER_ROLE_ACTIVATION_SERVER:
      return "activation server";
    case v1::WORKER_ROLE_TRAINER:
      return "trainer";
    default:
      return "worker";
  }
}

}  // namespace sae::client
