// "host:port" addresses as flags and assignments spell them.
#ifndef SAE_SERVICES_COMMON_HOST_PORT_H_
#define SAE_SERVICES_COMMON_HOST_PORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::service {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal
  int port = 0;

  // Whether the host is a wildcard ("0.0.0.0", "::" or empty): listen on every interface.
  bool IsWildcard() const;
  // host:port again, with brackets around an IPv6 literal.
  std::string ToString() const;
};

// Splits "host:port" or "[v6]:port" (port 0..65535). InvalidArgument names `what` (the flag or
// field, e.g. "--listen") and the text.
absl::StatusOr<HostPort> SplitHostPort(absl::string_view address, absl::string_view what);

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_HOST_PORT_H_
