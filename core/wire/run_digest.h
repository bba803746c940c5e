// The identity of a run's configuration, so that an activation server never streams to the
// trainers of another run.
#ifndef SAE_CORE_WIRE_RUN_DIGEST_H_
#define SAE_CORE_WIRE_RUN_DIGEST_H_

#include <string>

#include "core/config/run_config.h"

namespace sae::wire {

// 16 lower-case hex digits: the 64-bit FNV-1a hash of config::ToYaml(config). Equal for equal
// configs (operator==), whatever file or override they came from; resolve both sides the same
// way (training::ResolveRunConfig) before comparing. Not a security measure.
std::string RunConfigDigest(const config::RunConfig& config);

// The run id of a run started by hand (no controller): run.yaml run_name, else "run". The
// servers and trainers of a run must agree on it (--run-id overrides it on both).
std::string DefaultRunId(const config::RunConfig& config);

}  // namespace sae::wire

#endif  // SAE_CORE_WIRE_RUN_DIGEST_H_
