// How much memory a worker may use, for the controller's fit check of many-SAE runs
// (RegisterWorkerRequest.memory_bytes; docs/operations.md, "Memory").
#ifndef SAE_SERVICES_COMMON_MEMORY_LIMIT_H_
#define SAE_SERVICES_COMMON_MEMORY_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::service {

// "8GiB", "512MiB", "1.5G", "2000000000": a byte count with an optional binary (KiB, MiB, GiB,
// TiB) or decimal (K, M, G, T, KB, MB, GB, TB) unit. InvalidArgument naming `flag` otherwise.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag);

// MemAvailable of a /proc/meminfo text, in bytes; std::nullopt when absent.
std::optional<int64_t> MemAvailableFromMeminfo(absl::string_view meminfo);

// A cgroup v2 memory.max text ("max\n" or a byte count) less memory.current: what the cgroup
// still allows. std::nullopt for "max" or an unreadable value.
std::optional<int64_t> CgroupRoomFromFiles(absl::string_view memory_max,
                                           absl::string_view memory_current);

// What this process may still use: the smaller of /proc/meminfo's MemAvailable and its cgroup's
// room (/sys/fs/cgroup/memory.max minus memory.current); 0 when neither can be read.
int64_t AvailableMemoryBytes();

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_MEMORY_LIMIT_H_
