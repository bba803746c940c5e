#include "services/common/host_port.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace sae::service {

bool HostPort::IsWildcard() const { return host.empty() || host == "0.0.0.0" || host == "::"; }

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> SplitHostPort(absl::string_view address, absl::string_view what) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", address, "\" ", why, ": expected HOST:PORT or [V6]:PORT"));
  };
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return bad("has no port");
  HostPort split;
  absl::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  split.host = std::string(host);
  if (!absl::SimpleAtoi(address.substr(colon + 1), &split.port) || split.port < 0 ||
      split.port > 65535) {
    return bad("has a bad port");
  }
  return split;
}

}  // namespace sae::service
