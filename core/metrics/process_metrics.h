// The standard process metrics of the Prometheus clients, read from /proc at scrape time.
#ifndef SAE_CORE_METRICS_PROCESS_METRICS_H_
#define SAE_CORE_METRICS_PROCESS_METRICS_H_

#include "absl/status/status.h"
#include "core/metrics/registry.h"

namespace sae::metrics {

// Registers, with a collector that refreshes them on every scrape (Linux only: it reads /proc):
//   process_cpu_seconds_total       user + system CPU time (counter)
//   process_resident_memory_bytes   resident set size
//   process_virtual_memory_bytes    virtual memory size
//   process_open_fds                open file descriptors
//   process_max_fds                 the soft limit on file descriptors
//   process_start_time_seconds      start time, seconds since the Unix epoch
// Names as in the Go and Python clients, so stock dashboards work. Also
//   sae_build_info{version, revision}  1 (the project's version; the git revision at configure time)
// Call once per registry.
// Unavailable when /proc cannot be read; errors from Registry::AddGauge/AddCounter otherwise.
absl::Status AddProcessMetrics(Registry* registry);

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_PROCESS_METRICS_H_
