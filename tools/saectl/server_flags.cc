#include "tools/saectl/server_flags.h"

namespace sae::saectl {

void AddServerFlags(CLI::App* command, ServerFlags* flags) {
  command
      ->add_option("--server", flags->server,
                   "host:port of the controller (default: $SAECTL_SERVER, else 127.0.0.1:7070)")
      ->envname(kServerEnv);
  command->add_option("--token", flags->token,
                      "Bearer token for the controller (default: $SAE_AUTH_TOKEN)");
  command->add_option("--tls-ca", flags->tls_ca,
                      "PEM file of the CA that signed the controller's certificate (TLS)");
  command
      ->add_option("--request-timeout", flags->timeout_seconds,
                   "Seconds each call to the controller may take")
      ->check(CLI::PositiveNumber);
}

absl::StatusOr<std::unique_ptr<client::ControllerClient>> ConnectController(
    const ServerFlags& flags) {
  client::ControllerClientOptions options;
  options.address = flags.server;
  options.security.auth_token = rpc::FlagOrEnv(flags.token, rpc::kAuthTokenEnv);
  options.security.tls_ca_file = flags.tls_ca;
  options.timeout = absl::Seconds(flags.timeout_seconds);
  return client::ControllerClient::Connect(options);
}

}  // namespace sae::saectl
