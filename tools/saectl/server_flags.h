// How saectl reaches the controller: --server (or $SAECTL_SERVER), --token (or $SAE_AUTH_TOKEN)
// and --tls-ca, shared by the run and cluster commands.
#ifndef SAE_TOOLS_SAECTL_SERVER_FLAGS_H_
#define SAE_TOOLS_SAECTL_SERVER_FLAGS_H_

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "services/common/controller_client.h"

namespace sae::saectl {

inline constexpr char kServerEnv[] = "SAECTL_SERVER";

struct ServerFlags {
  std::string server = client::kDefaultControllerAddress;
  std::string token;
  std::string tls_ca;
  double timeout_seconds = 30;
};

// Adds --server, --token, --tls-ca and --request-timeout to `command`.
void AddServerFlags(CLI::App* command, ServerFlags* flags);

// A client for the controller the flags name (the token falls back to $SAE_AUTH_TOKEN).
absl::StatusOr<std::unique_ptr<client::ControllerClient>> ConnectController(
    const ServerFlags& flags);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_SERVER_FLAGS_H_
