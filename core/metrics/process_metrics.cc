#include "core/metrics/process_metrics.h"

#ifndef SAE_VERSION
#define SAE_VERSION "unknown"
#endif
#ifndef SAE_REVISION
#define SAE_REVISION "unknown"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status.h"

namespace sae::metrics {
namespace {

// Reads a /proc file. (sae::ReadFile trusts st_size, which /proc reports as 0.)
absl::StatusOr<std::string> ReadProcFile(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(std::string("cannot open ") + path);
  std::string contents;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) contents.append(buffer, n);
  ::close(fd);
  if (n < 0) return absl::UnavailableError(std::string("cannot read ") + path);
  return contents;
}

// The fields of /proc/self/stat from field 3 (state) on, so fields()[i] is field i + 3 of proc(5).
// The command name (field 2) is skipped whole: it is in parentheses and may hold spaces.
absl::StatusOr<std::vector<std::string>> ReadSelfStat() {
  SAE_ASSIGN_OR_RETURN(std::string stat, ReadProcFile("/proc/self/stat"));
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return absl::UnavailableError("cannot parse /proc/self/stat");
  std::vector<std::string> fields =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipWhitespace());
  if (fields.size() < 22) return absl::UnavailableError("cannot parse /proc/self/stat");
  return fields;
}

double StatField(const std::vector<std::string>& fields, int field_number) {
  double value = 0;
  if (!absl::SimpleAtod(fields[field_number - 3], &value)) return 0;
  return value;
}

// Seconds since the epoch at which the machine booted ("btime" in /proc/stat).
absl::StatusOr<double> BootTimeSeconds() {
  SAE_ASSIGN_OR_RETURN(std::string stat, ReadProcFile("/proc/stat"));
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    double seconds = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &seconds)) return seconds;
  }
  return absl::UnavailableError("no btime line in /proc/stat");
}

double OpenFileDescriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // Not counting the descriptor opendir itself holds.
}

}  // namespace

absl::Status AddProcessMetrics(Registry* registry) {
  const double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page_bytes = static_cast<double>(::sysconf(_SC_PAGESIZE));
  SAE_ASSIGN_OR_RETURN(double boot_time, BootTimeSeconds());
  SAE_ASSIGN_OR_RETURN(std::vector<std::string> fields, ReadSelfStat());

  SAE_ASSIGN_OR_RETURN(
      Family<Counter> * cpu,
      registry->AddCounter("process_cpu_seconds_total",
                           "Total user and system CPU time spent in seconds.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * resident,
      registry->AddGauge("process_resident_memory_bytes", "Resident memory size in bytes.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * virtual_memory,
      registry->AddGauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * open_fds,
      registry->AddGauge("process_open_fds", "Number of open file descriptors.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * max_fds,
      registry->AddGauge("process_max_fds", "Maximum number of open file descriptors.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * start_time,
      registry->AddGauge("process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.", {}));
  SAE_ASSIGN_OR_RETURN(
      Family<Gauge> * build_info,
      registry->AddGauge("sae_build_info",
                         "Always 1; the labels say which build of sae-service this process is "
                         "(version, and the git revision the build was configured at).",
                         {"version", "revision"}));
  build_info->Labels({SAE_VERSION, SAE_REVISION}).Set(1);
  // Field 22 of /proc/self/stat: start time in clock ticks after boot.
  start_time->Labels().Set(boot_time + StatField(fields, 22) / ticks_per_second);

  Counter& cpu_seconds = cpu->Labels();
  Gauge& resident_bytes = resident->Labels();
  Gauge& virtual_bytes = virtual_memory->Labels();
  Gauge& open_fd_count = open_fds->Labels();
  Gauge& max_fd_count = max_fds->Labels();
  registry->AddCollector(
      [=, &cpu_seconds, &resident_bytes, &virtual_bytes, &open_fd_count, &max_fd_count] {
        absl::StatusOr<std::vector<std::string>> stat = ReadSelfStat();
        if (stat.ok()) {
          // Fields 14 and 15: user and system time in ticks; 23: virtual size in bytes; 24:
          // resident set in pages. The counter only moves up to the kernel's figure (collectors run
          // one at a time, so nothing else writes it).
          double cpu_now = (StatField(*stat, 14) + StatField(*stat, 15)) / ticks_per_second;
          cpu_seconds.Increment(cpu_now - cpu_seconds.Value());
          virtual_bytes.Set(StatField(*stat, 23));
          resident_bytes.Set(StatField(*stat, 24) * page_bytes);
        }
        open_fd_count.Set(OpenFileDescriptors());
        rlimit limit;
        if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
          max_fd_count.Set(limit.rlim_cur == RLIM_INFINITY ? INFINITY
                                                           : static_cast<double>(limit.rlim_cur));
        }
      });
  return absl::OkStatus();
}

}  // namespace sae::metrics
