#include "services/common/memory_limit.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sae::service {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  size_t unit_at = 0;
  while (unit_at < trimmed.size() &&
         (absl::ascii_isdigit(static_cast<unsigned char>(trimmed[unit_at])) ||
          trimmed[unit_at] == '.')) {
    ++unit_at;
  }
  const std::string unit = absl::AsciiStrToLower(absl::StripAsciiWhitespace(trimmed.substr(unit_at)));
  double number = 0;
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  const char* prefixes = "kmgt";
  for (int i = 0; i < 4; ++i) {
    const std::string p(1, prefixes[i]);
    if (unit == p + "ib") scale = std::pow(1024.0, i + 1);
    if (unit == p || unit == p + "b") scale = std::pow(1000.0, i + 1);
  }
  if (unit_at == 0 || scale == 0 || !absl::SimpleAtod(trimmed.substr(0, unit_at), &number) ||
      number <= 0 || number * scale > 9.2e18) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", text,
                     "' is not a memory size; give a positive number of bytes with an optional "
                     "unit, e.g. 8GiB, 512MiB or 2G"));
  }
  return static_cast<int64_t>(std::llround(number * scale));
}

std::optional<int64_t> MemAvailableFromMeminfo(absl::string_view meminfo) {
  for (absl::string_view line : absl::StrSplit(meminfo, '\n')) {
    if (!absl::ConsumePrefix(&line, "MemAvailable:")) continue;
    line = absl::StripAsciiWhitespace(line);
    const bool kib = absl::ConsumeSuffix(&line, "kB");
    int64_t value = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &value) || value < 0) {
      return std::nullopt;
    }
    return kib ? value * 1024 : value;
  }
  return std::nullopt;
}

std::optional<int64_t> CgroupRoomFromFiles(absl::string_view memory_max,
                                           absl::string_view memory_current) {
  int64_t max = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(memory_max), &max)) return std::nullopt;
  int64_t current = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(memory_current), &current)) current = 0;
  return std::max<int64_t>(0, max - current);
}

int64_t AvailableMemoryBytes() {
  std::optional<int64_t> machine = MemAvailableFromMeminfo(ReadSmallFile("/proc/meminfo"));
  // cgroup v2: /proc/self/cgroup is "0::/path"; a container with its own cgroup namespace sees
  // "0::/", its limits at the root.
  std::string group = "/";
  for (absl::string_view line : absl::StrSplit(ReadSmallFile("/proc/self/cgroup"), '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) group = std::string(line);
  }
  const std::string dir = absl::StrCat("/sys/fs/cgroup", group == "/" ? "" : group);
  std::optional<int64_t> cgroup = CgroupRoomFromFiles(ReadSmallFile(dir + "/memory.max"),
                                                      ReadSmallFile(dir + "/memory.current"));
  if (machine && cgroup) return std::min(*machine, *cgroup);
  if (machine) return *machine;
  if (cgroup) return *cgroup;
  return 0;
}

}  // namespace sae::service
