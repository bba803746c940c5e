// Small pieces shared by the files of Controller (controller*.cc). Not for other users.
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_INTERNAL_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_INTERNAL_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "sae/v1/controller.pb.h"

namespace sae::controller::internal {

inline int64_t UnixMillis(absl::Time time) { return absl::ToUnixMillis(time); }

// `length` random lower-case letters and digits, for run and worker ids.
std::string RandomSuffix(size_t length);

// "512 B", "1.5 KiB", "12.0 MiB", "1.25 GiB".
std::string HumanBytes(int64_t bytes);

// "trainer rank 1 (trainer-k3x9qz at 127.0.0.1:7101)", "activation server shard 0 (...)".
std::string WorkerLabel(const v1::RunWorker& worker);

// The worker's slot as a run records it.
v1::RunWorker RunWorkerOf(const v1::Worker& worker);

}  // namespace sae::controller::internal

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_INTERNAL_H_
