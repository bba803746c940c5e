// sae-controller: the run store and scheduler of the SAE training service.
//
//   sae-controller --listen 127.0.0.1:7070 --data-dir /var/lib/sae --metrics-port 9400
//
// Stops gracefully on SIGINT or SIGTERM. docs/operations.md describes flags, ports, metrics,
// storage and failure behaviour.
#include <signal.h>

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "services/controller/controller_server.h"
#include "spdlog/spdlog.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:7070";
  std::string data_dir;
  int metrics_port = 9400;  // docs/operations.md: 9400 controller, 9401 activation servers, 9402 trainers
  double lease_seconds = 10;
  int checkpoint_retention = 3;
  double stop_timeout_seconds = 120;
  std::string auth_token;
  std::string tls_cert;
  std::string tls_key;
  std::string port_file;
  bool metrics_require_token = false;
  std::string metrics_tls_cert;
  std::string metrics_tls_key;
};

int Serve(const Flags& flags) {
  sae::controller::ControllerServerOptions options;
  options.listen = flags.listen;
  options.data_dir = flags.data_dir;
  options.metrics_port = flags.metrics_port;
  options.security.auth_token = sae::rpc::FlagOrEnv(flags.auth_token, sae::rpc::kAuthTokenEnv);
  options.security.tls_cert_file = flags.tls_cert;
  options.security.tls_key_file = flags.tls_key;
  if (flags.metrics_require_token) {
    if (options.security.auth_token.empty()) {
      std::fprintf(stderr,
                   "sae-controller: --metrics-require-token needs a token: pass --auth-token or "
                   "set $SAE_AUTH_TOKEN\n");
      return 2;
    }
    options.metrics_security.auth_token = options.security.auth_token;
  }
  options.metrics_security.tls_cert_file = flags.metrics_tls_cert;
  options.metrics_security.tls_key_file = flags.metrics_tls_key;
  options.controller.lease = absl::Seconds(flags.lease_seconds);
  options.controller.checkpoint_retention = flags.checkpoint_retention;
  options.controller.stop_timeout = absl::Seconds(flags.stop_timeout_seconds);

  // SIGINT and SIGTERM are taken by sigwait below, in no other thread (the mask is inherited).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = sae::controller::ControllerServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "sae-controller: %s\n", std::string(server.status().message()).c_str());
    return server.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (!flags.port_file.empty()) {
    absl::Status written =
        sae::WriteFileAtomically(flags.port_file, absl::StrCat((*server)->port(), "\n"));
    if (!written.ok()) {
      std::fprintf(stderr, "sae-controller: %s\n", std::string(written.message()).c_str());
      return 1;
    }
  }
  spdlog::info("sae-controller serving on {} (data {}, metrics {}, lease {}s{}{})",
               (*server)->address(), flags.data_dir,
               (*server)->metrics_port() < 0 ? std::string("off")
                                             : absl::StrCat(":", (*server)->metrics_port()),
               flags.lease_seconds, options.security.auth_token.empty() ? "" : ", bearer token",
               options.security.tls_cert_file.empty() ? "" : ", TLS");
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("sae-controller: signal {}, shutting down", received);
  (*server)->Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"sae-controller: stores runs and checkpoints, schedules workers, restarts runs"};
  app.add_option("--listen", flags.listen, "host:port of the gRPC API (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", flags.data_dir, "Folder of the RocksDB store")->required();
  app.add_option("--metrics-port", flags.metrics_port,
                 "Port of /metrics, /healthz and the web console (0: any free port; -1: none)")
      ->capture_default_str();
  app.add_flag("--metrics-require-token", flags.metrics_require_token,
               "/metrics requires the bearer token (--auth-token / $SAE_AUTH_TOKEN); the console "
               "requires it whenever there is one; /healthz stays open");
  app.add_option("--metrics-tls-cert", flags.metrics_tls_cert,
                 "PEM certificate chain: serve /metrics, /healthz and the console over HTTPS")
      ->check(CLI::ExistingFile);
  app.add_option("--metrics-tls-key", flags.metrics_tls_key,
                 "PEM private key of --metrics-tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--lease-seconds", flags.lease_seconds,
                 "A worker silent this long is lost and its run restarts")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--checkpoint-retention", flags.checkpoint_retention,
                 "Checkpoints kept per run, newest first (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stop-timeout-seconds", flags.stop_timeout_seconds,
                 "A stopping run ends STOPPED after this long without rank 0's confirmation")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--auth-token", flags.auth_token,
                 "Bearer token every call must carry (default: $SAE_AUTH_TOKEN; none when empty)");
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate chain: serve TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--port-file", flags.port_file,
                 "Write the bound gRPC port to this file once serving");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return Serve(flags);
}
