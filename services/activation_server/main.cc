// sae-activation-server: runs GPT-2 over one shard of a run's dataset and streams the hook
// point's activations, shuffled, to the run's trainers (docs/operations.md).
//
//   sae-activation-server --config run.yaml --shard-index 0 --shard-count 2 \
//       --listen 0.0.0.0:50051 --metrics-port 9401 --cursor-file /var/lib/sae/shard0.cursor
//
// or, serving whatever the controller assigns (services/activation_server/worker_mode.h):
//
//   sae-activation-server --controller 10.0.0.2:7070 --listen 0.0.0.0:50051 --metrics-port 9401
//
// Exit codes: 0 after SIGTERM/SIGINT and a graceful shutdown; 1 a failure (generation error,
// port in use); 2 a usage or config error.
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/metrics/metrics_server.h"
#include "core/metrics/process_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "core/wire/cursor_text.h"
#include "nlohmann/json.hpp"
#include "services/activation_server/activation_server.h"
#include "services/activation_server/worker_mode.h"
#include "services/common/exit_code.h"
#include "services/common/host_port.h"
#include "services/common/large_allocations.h"
#include "services/common/termination_signals.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {
namespace {

struct Flags {
  std::string controller;
  std::string advertise;
  std::string tls_ca;
  double keep_warm_seconds = 120;
  std::string config;
  std::vector<std::string> sets;
  std::string run_id;
  uint32_t shard_index = 0;
  uint32_t shard_count = 1;
  std::string listen = "0.0.0.0:50051";
  int metrics_port = 9401;  // docs/operations.md: 9400 controller, 9401 activation servers, 9402 trainers
  std::string metrics_address = "0.0.0.0";
  bool metrics_require_token = false;
  std::string metrics_tls_cert;
  std::string metrics_tls_key;
  int threads = 0;
  std::string resume_cursor;
  std::string cursor_file;
  int max_batches_per_call = 8;
  std::string auth_token;
  std::string tls_cert;
  std::string tls_key;
  std::string ready_file;
  double shutdown_grace_seconds = 10;
};

// The metrics registry with the process series, served on --metrics-port unless it is -1.
struct MetricsEndpoint {
  metrics::Registry registry;
  service::HealthSource health;  // /healthz
  std::unique_ptr<metrics::MetricsServer> server;
  int port() const { return server ? server->port() : -1; }
};

absl::Status StartMetrics(const Flags& flags, MetricsEndpoint& metrics) {
  SAE_RETURN_IF_ERROR(metrics::AddProcessMetrics(&metrics.registry));
  if (flags.metrics_port < 0) return absl::OkStatus();
  metrics::MetricsServerOptions options;
  options.bind_address = flags.metrics_address;
  options.port = flags.metrics_port;
  options.health = [health = &metrics.health] { return health->Evaluate(); };
  if (flags.metrics_require_token) {
    options.auth_token = rpc::FlagOrEnv(flags.auth_token, rpc::kAuthTokenEnv);
    if (options.auth_token.empty()) {
      return absl::InvalidArgumentError(
          "--metrics-require-token needs a token: pass --auth-token or set $SAE_AUTH_TOKEN");
    }
  }
  options.tls_cert_file = flags.metrics_tls_cert;
  options.tls_key_file = flags.metrics_tls_key;
  SAE_ASSIGN_OR_RETURN(metrics.server, metrics::MetricsServer::Start(&metrics.registry, options));
  return absl::OkStatus();
}

// The address trainers are told: --advertise, else --listen with a wildcard host replaced by
// this machine's host name.
std::string AdvertisedAddress(const Flags& flags) {
  if (!flags.advertise.empty()) return flags.advertise;
  absl::StatusOr<service::HostPort> listen = service::SplitHostPort(flags.listen, "--listen");
  if (!listen.ok() || !listen->IsWildcard()) return flags.listen;
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) return flags.listen;
  return absl::StrCat(name, ":", listen->port);
}

// --controller: serve what the controller assigns until SIGTERM / SIGINT.
absl::Status RunWorker(const Flags& flags) {
  const int threads = ConfigureTorchThreads(flags.threads);
  MetricsEndpoint metrics;
  SAE_RETURN_IF_ERROR(StartMetrics(flags, metrics));
  spdlog::info("activation server worker with {} torch threads; metrics on port {}", threads,
               metrics.port());
  ActivationWorkerOptions options;
  options.controller = flags.controller;
  options.controller_security.auth_token = rpc::FlagOrEnv(flags.auth_token, rpc::kAuthTokenEnv);
  options.controller_security.tls_ca_file = flags.tls_ca;
  options.listen = flags.listen;
  options.advertise = AdvertisedAddress(flags);
  options.security.auth_token = options.controller_security.auth_token;
  options.security.tls_cert_file = flags.tls_cert;
  options.security.tls_key_file = flags.tls_key;
  options.max_batches_per_call = flags.max_batches_per_call;
  options.keep_warm = absl::Seconds(flags.keep_warm_seconds);
  options.shutdown_grace = absl::Seconds(flags.shutdown_grace_seconds);
  options.metrics = &metrics.registry;
  options.health = &metrics.health;
  return RunActivationServerWorker(options, [](absl::Duration timeout) {
    const int signal = service::WaitForTerminationSignal(timeout);
    if (signal != 0) spdlog::info("signal {}: shutting down", signal);
    return signal != 0;
  });
}

absl::Status Run(const Flags& flags) {
  if (!flags.controller.empty()) return RunWorker(flags);
  if (flags.config.empty()) {
    return absl::InvalidArgumentError("--config run.yaml is required (or --controller ADDR)");
  }
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, config::LoadRunConfig(flags.config));
  if (!flags.sets.empty()) SAE_RETURN_IF_ERROR(config::ApplyOverrides(config, flags.sets));
  for (const std::string& warning : config.source.warnings) spdlog::warn("{}", warning);
  const int threads = ConfigureTorchThreads(flags.threads);

  MetricsEndpoint metrics;
  SAE_RETURN_IF_ERROR(StartMetrics(flags, metrics));

  ActivationServerOptions options;
  options.config = std::move(config);
  options.run_id = flags.run_id;
  options.shard_index = flags.shard_index;
  options.shard_count = flags.shard_count;
  options.listen = flags.listen;
  if (!flags.resume_cursor.empty()) {
    absl::StatusOr<data::ShardCursor> cursor = wire::CursorFromHex(flags.resume_cursor);
    if (!cursor.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--resume-cursor: ", cursor.status().message()));
    }
    options.resume_cursor = *cursor;
  }
  options.cursor_file = flags.cursor_file;
  options.max_batches_per_call = flags.max_batches_per_call;
  options.security.auth_token = rpc::FlagOrEnv(flags.auth_token, rpc::kAuthTokenEnv);
  options.security.tls_cert_file = flags.tls_cert;
  options.security.tls_key_file = flags.tls_key;
  options.metrics = &metrics.registry;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<ActivationServer> server,
                       ActivationServer::Start(std::move(options)));
  const int metrics_port = metrics.port();
  spdlog::info("serving on port {} with {} torch threads; metrics on port {}", server->port(),
               threads, metrics_port);
  if (!flags.ready_file.empty()) {
    nlohmann::json ready = {{"pid", ::getpid()},
                            {"port", server->port()},
                            {"metrics_port", metrics_port},
                            {"run_id", server->run_id()},
                            {"incarnation", absl::StrCat(server->incarnation())}};
    SAE_RETURN_IF_ERROR(WriteFileAtomically(flags.ready_file, ready.dump() + "\n"));
  }

  absl::Status outcome;
  for (;;) {
    const int signal = service::WaitForTerminationSignal(absl::Milliseconds(500));
    if (signal != 0) {
      spdlog::info("signal {}: shutting down (grace {} s)", signal, flags.shutdown_grace_seconds);
      break;
    }
    absl::Status generation = server->generation_status();
    if (!generation.ok()) {
      outcome =
          absl::InternalError(absl::StrCat("activation generation failed: ", generation.message()));
      break;
    }
  }
  server->Shutdown(absl::Seconds(flags.shutdown_grace_seconds));
  return outcome;
}

}  // namespace
}  // namespace sae::activation_server

namespace {

int Main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  sae::LogToStderr("sae-activation-server");
  // The re-exec above names the process "exe" (/proc/self/exe); ps and top should say what it is.
  ::prctl(PR_SET_NAME, "sae-activation");
  sae::service::CatchTerminationSignals();
  sae::service::ReuseLargeAllocations();
  sae::activation_server::Flags flags;
  CLI::App app{
      "sae-activation-server: GPT-2 activations of one dataset shard, streamed to "
      "the trainers over gRPC"};
  CLI::Option* controller = app.add_option(
      "--controller", flags.controller,
      "host:port of the controller: serve the runs it assigns (instead of --config)");
  app.add_option("--advertise", flags.advertise,
                 "with --controller: host:port trainers reach this server at (default: --listen, "
                 "with this host's name for a 0.0.0.0 host)")
      ->needs(controller);
  app.add_option("--tls-ca", flags.tls_ca,
                 "with --controller: PEM CA certificates to verify the controller's TLS with")
      ->needs(controller);
  app.add_option("--keep-warm", flags.keep_warm_seconds,
                 "with --controller: seconds a server whose run is between generations stays "
                 "loaded")
      ->needs(controller);
  const std::vector<CLI::Option*> by_hand = {
      app.add_option("--config", flags.config, "run.yaml of the run (without --controller)"),
      app.add_option("--set", flags.sets, "override a run.yaml key (key=value), repeatable"),
      app.add_option("--run-id", flags.run_id,
                     "the run's id; trainers must use the same (default: run_name, else \"run\")"),
      app.add_option("--shard-index", flags.shard_index, "the shard this server generates"),
      app.add_option("--shard-count", flags.shard_count,
                     "the number of shards (activation servers) of the run")};
  for (CLI::Option* option : by_hand) option->excludes(controller);
  app.add_option("--listen", flags.listen,
                 "host:port for gRPC (port 0: any free port, not with --controller)");
  app.add_option("--metrics-port", flags.metrics_port,
                 "port of /metrics and /healthz (default 9401; 0: any free port, -1: none)");
  app.add_option("--metrics-address", flags.metrics_address, "address /metrics binds");
  app.add_flag(
      "--metrics-require-token", flags.metrics_require_token,
      "/metrics requires the bearer token (--auth-token / $SAE_AUTH_TOKEN); /healthz stays open");
  app.add_option("--metrics-tls-cert", flags.metrics_tls_cert,
                 "PEM certificate chain: serve /metrics and /healthz over HTTPS")
      ->check(CLI::ExistingFile);
  app.add_option("--metrics-tls-key", flags.metrics_tls_key,
                 "PEM private key of --metrics-tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", flags.threads, "LibTorch threads for the model (0: one per core)");
  app.add_option("--resume-cursor", flags.resume_cursor,
                 "hex shard cursor to start generating from (a trainer checkpoint or a "
                 "previous server's frontier)")
      ->excludes(controller);
  app.add_option("--cursor-file", flags.cursor_file,
                 "file that keeps the generation frontier; resumed from when it exists")
      ->excludes(controller);
  app.add_option("--max-batches-per-call", flags.max_batches_per_call,
                 "batches per StreamActivations call (the unacknowledged window per consumer)");
  app.add_option("--auth-token", flags.auth_token,
                 "bearer token every call must carry, and that this server sends the controller "
                 "(default: $SAE_AUTH_TOKEN)");
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate chain for TLS");
  app.add_option("--tls-key", flags.tls_key, "PEM private key for TLS");
  app.add_option("--ready-file", flags.ready_file,
                 "write {pid, port, metrics_port, ...} as JSON here once serving")
      ->excludes(controller);
  app.add_option("--shutdown-grace", flags.shutdown_grace_seconds,
                 "seconds streams get to finish after SIGTERM");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  absl::Status status = sae::activation_server::Run(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "sae-activation-server: error: %s\n",
                 std::string(status.message()).c_str());
    return sae::service::ExitCodeFor(status);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", "sae-activation-server", e.what());
    return 1;
  }
}
