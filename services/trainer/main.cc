// sae-trainer: one rank of a data-parallel SAE training run, fed by activation servers
// (docs/operations.md).
//
//   sae-trainer --config run.yaml --rank 0 --world-size 2 --rendezvous 10.0.0.5:29500 \
//       --servers 10.0.0.7:50051,10.0.0.8:50051 --output /runs/r1 --metrics-port 9402
//
// or, training whatever the controller assigns (services/trainer/worker_mode.h):
//
//   sae-trainer --controller 10.0.0.2:7070 --listen 10.0.0.5:29500 --work-dir /var/lib/sae
//
// Exit codes: 0 the run reached total_training_tokens; 1 a failure (a server or a peer gone,
// I/O); 2 a usage or config error; 3 stopped by SIGTERM/SIGINT after writing a checkpoint.
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "core/config/run_config.h"
#include "core/metrics/metrics_server.h"
#include "core/metrics/process_metrics.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"
#include "services/common/exit_code.h"
#include "services/common/host_port.h"
#include "services/common/large_allocations.h"
#include "services/common/memory_limit.h"
#include "services/common/termination_signals.h"
#include "services/trainer/distributed_training.h"
#include "services/trainer/worker_mode.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {
namespace {

struct Flags {
  std::string controller;
  std::string listen;
  std::string work_dir;
  double restart_grace_seconds = 0;
  std::string memory_limit;
  std::string config;
  std::vector<std::string> sets;
  std::string run_id;
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;
  std::string rendezvous_key;
  std::string bind_address;
  std::string backend = "auto";
  std::string servers;
  std::string output;
  std::string resume;
  int metrics_port = 9402;  // docs/operations.md: 9400 controller, 9401 activation servers, 9402 trainers
  std::string metrics_address = "0.0.0.0";
  bool metrics_require_token = false;
  std::string metrics_tls_cert;
  std::string metrics_tls_key;
  int threads = 0;
  int prefetch_batches = 0;
  int max_batches_per_call = 8;
  double server_deadline_seconds = 60;
  // Negative: 300 s when started by hand, 60 s under a controller (which restarts a group that
  // broke, so waiting long buys nothing).
  double rendezvous_timeout_seconds = -1;
  double collective_timeout_seconds = -1;
  std::string batch_log;
  std::string auth_token;
  std::string tls_ca;
  std::string ready_file;
};

absl::StatusOr<CollectiveBackend> ParseBackend(const std::string& name) {
  if (name == "auto") return DefaultBackend();
  if (name == "gloo") return CollectiveBackend::kGloo;
  if (name == "nccl") return CollectiveBackend::kNccl;
  return absl::InvalidArgumentError("--backend must be auto, gloo or nccl");
}

// Where a trainer started by hand reads its group's key when --rendezvous-key is not given.
constexpr char kRendezvousKeyEnv[] = "SAE_RENDEZVOUS_KEY";

absl::Duration TimeoutFlag(double seconds, bool controller) {
  if (seconds < 0) return absl::Seconds(controller ? 60 : 300);
  return absl::Seconds(seconds);
}

// The group settings the flags give (rank, world size and rendezvous matter only by hand; a
// worker takes them from each assignment).
absl::StatusOr<ProcessGroupOptions> GroupFromFlags(const Flags& flags, bool controller) {
  ProcessGroupOptions group;
  group.rank = flags.rank;
  group.world_size = flags.world_size;
  group.rendezvous = flags.rendezvous;
  group.key = rpc::FlagOrEnv(flags.rendezvous_key, kRendezvousKeyEnv);
  group.bind_address = flags.bind_address;
  SAE_ASSIGN_OR_RETURN(group.backend, ParseBackend(flags.backend));
  group.rendezvous_timeout = TimeoutFlag(flags.rendezvous_timeout_seconds, controller);
  group.collective_timeout = TimeoutFlag(flags.collective_timeout_seconds, controller);
  return group;
}

StreamSettings StreamFromFlags(const Flags& flags) {
  StreamSettings stream;
  stream.security.auth_token = rpc::FlagOrEnv(flags.auth_token, rpc::kAuthTokenEnv);
  stream.security.tls_ca_file = flags.tls_ca;
  stream.prefetch_batches = flags.prefetch_batches;
  stream.max_batches_per_call = flags.max_batches_per_call;
  stream.server_deadline = absl::Seconds(flags.server_deadline_seconds);
  return stream;
}

// /metrics on --metrics-address:--metrics-port; null when --metrics-port is negative.
absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> StartMetricsServer(
    const Flags& flags, metrics::Registry* registry,
    const service::HealthSource* health = nullptr) {
  if (flags.metrics_port < 0) return nullptr;
  metrics::MetricsServerOptions options;
  options.bind_address = flags.metrics_address;
  options.port = flags.metrics_port;
  if (health != nullptr) options.health = [health] { return health->Evaluate(); };
  if (flags.metrics_require_token) {
    options.auth_token = rpc::FlagOrEnv(flags.auth_token, rpc::kAuthTokenEnv);
    if (options.auth_token.empty()) {
      return absl::InvalidArgumentError(
          "--metrics-require-token needs a token: pass --auth-token or set $SAE_AUTH_TOKEN");
    }
  }
  options.tls_cert_file = flags.metrics_tls_cert;
  options.tls_key_file = flags.metrics_tls_key;
  return metrics::MetricsServer::Start(registry, options);
}

// --controller: train what the controller assigns until SIGTERM / SIGINT.
absl::Status RunWorker(const Flags& flags) {
  const int threads = ConfigureTorchThreads(flags.threads);
  metrics::Registry registry;
  SAE_RETURN_IF_ERROR(metrics::AddProcessMetrics(&registry));
  service::HealthSource health;
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> metrics_server,
                       StartMetricsServer(flags, &registry, &health));
  spdlog::info("trainer worker with {} torch threads; metrics on port {}", threads,
               metrics_server ? metrics_server->port() : -1);
  TrainerWorkerOptions options;
  options.controller = flags.controller;
  options.stream = StreamFromFlags(flags);
  options.controller_security = options.stream.security;
  options.listen = flags.listen;
  options.work_dir = flags.work_dir;
  if (options.work_dir.empty()) {
    SAE_ASSIGN_OR_RETURN(service::HostPort listen, service::SplitHostPort(flags.listen, "--listen"));
    const char* tmp = std::getenv("TMPDIR");
    options.work_dir = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp",
                                    "/sae-trainer-", listen.port);
  }
  SAE_ASSIGN_OR_RETURN(options.group, GroupFromFlags(flags, true));
  options.restart_grace = absl::Seconds(flags.restart_grace_seconds);
  if (!flags.memory_limit.empty()) {
    SAE_ASSIGN_OR_RETURN(options.memory_bytes,
                         service::ParseByteSize(flags.memory_limit, "--memory-limit"));
  } else {
    options.memory_bytes = service::AvailableMemoryBytes();
  }
  options.metrics = &registry;
  options.health = &health;
  return RunTrainerWorker(options, [](absl::Duration timeout) {
    const int signal = service::WaitForTerminationSignal(timeout);
    if (signal != 0) spdlog::info("signal {}: shutting down", signal);
    return signal != 0;
  });
}

absl::StatusOr<bool> Run(const Flags& flags, const std::atomic<bool>* stop) {
  if (flags.config.empty() || flags.servers.empty()) {
    return absl::InvalidArgumentError(
        "--config run.yaml and --servers are required (or --controller ADDR)");
  }
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, config::LoadRunConfig(flags.config));
  if (!flags.sets.empty()) SAE_RETURN_IF_ERROR(config::ApplyOverrides(config, flags.sets));
  for (const std::string& warning : config.source.warnings) spdlog::warn("{}", warning);
  const int threads = ConfigureTorchThreads(flags.threads);

  metrics::Registry registry;
  SAE_RETURN_IF_ERROR(metrics::AddProcessMetrics(&registry));
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<metrics::MetricsServer> metrics_server,
                       StartMetricsServer(flags, &registry));
  const int metrics_port = metrics_server ? metrics_server->port() : -1;
  spdlog::info("trainer rank {} of {} with {} torch threads; metrics on port {}", flags.rank,
               flags.world_size, threads, metrics_port);
  if (!flags.ready_file.empty()) {
    nlohmann::json ready = {{"pid", ::getpid()}, {"metrics_port", metrics_port}};
    SAE_RETURN_IF_ERROR(WriteFileAtomically(flags.ready_file, ready.dump() + "\n"));
  }

  DistributedTrainingOptions options;
  options.config = std::move(config);
  options.run_id = flags.run_id;
  SAE_ASSIGN_OR_RETURN(options.group, GroupFromFlags(flags, false));
  for (absl::string_view server : absl::StrSplit(flags.servers, ',', absl::SkipWhitespace())) {
    options.servers.emplace_back(server);
  }
  options.stream = StreamFromFlags(flags);
  options.output_dir = flags.output;
  if (!flags.resume.empty()) options.resume_dir = flags.resume;
  options.batch_log = flags.batch_log;
  options.metrics = &registry;
  options.stop = stop;
  SAE_ASSIGN_OR_RETURN(DistributedTrainingResult result,
                       RunDistributedTraining(std::move(options)));
  spdlog::info(
      "rank {}: {} after {} steps, {} tokens in {:.1f} s ({:.0f} tokens/s in the loop, "
      "{:.1f} s waiting for data, {:.1f} s in collectives)",
      flags.rank, result.stopped ? "stopped" : "finished", result.steps, result.tokens,
      result.seconds, result.tokens_per_second, result.wait_seconds, result.collective_seconds);
  return !result.stopped;
}

}  // namespace
}  // namespace sae::trainer

namespace {

// --metrics-port and how the metrics port is protected.
// The flags of a trainer that takes its runs from the controller (--controller).
void AddWorkerFlags(CLI::App& app, sae::trainer::Flags& flags, CLI::Option* controller) {
  app.add_option("--listen", flags.listen,
                 "with --controller: host:port registered with the controller; as rank 0 of a "
                 "group this trainer hosts the c10d TCPStore on its port")
      ->needs(controller);
  app.add_option("--work-dir", flags.work_dir,
                 "with --controller: folder for downloaded checkpoints and each generation's "
                 "outputs (default: $TMPDIR/sae-trainer-PORT)")
      ->needs(controller);
  app.add_option("--restart-grace", flags.restart_grace_seconds,
                 "with --controller: seconds a rank whose group broke waits for the next "
                 "generation before it reports the failure (0: twice the lease plus 5)")
      ->needs(controller);
  app.add_option("--memory-limit", flags.memory_limit,
                 "with --controller: memory runs may use on this worker, e.g. 16GiB; the "
                 "controller gives it no run whose estimate is larger (default: the memory the "
                 "machine and this process's cgroup have available at start)")
      ->needs(controller);
}

void AddMetricsFlags(CLI::App& app, sae::trainer::Flags& flags) {
  app.add_option("--metrics-port", flags.metrics_port,
                 "port of /metrics and /healthz (default 9402; 0: any free port, -1: none)");
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
}

int Main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  sae::LogToStderr("sae-trainer");
  // The re-exec above names the process "exe" (/proc/self/exe); ps and top should say what it is.
  ::prctl(PR_SET_NAME, "sae-trainer");
  sae::service::CatchTerminationSignals();
  sae::service::ReuseLargeAllocations();
  sae::trainer::Flags flags;
  CLI::App app{
      "sae-trainer: one rank of a data-parallel SAE training run fed by activation "
      "servers"};
  CLI::Option* controller = app.add_option(
      "--controller", flags.controller,
      "host:port of the controller: train the runs it assigns (instead of --config)");
  AddWorkerFlags(app, flags, controller);
  const std::vector<CLI::Option*> by_hand = {
      app.add_option("--config", flags.config, "run.yaml of the run (without --controller)"),
      app.add_option("--set", flags.sets, "override a run.yaml key (key=value), repeatable"),
      app.add_option("--run-id", flags.run_id,
                     "the run's id; the activation servers must use the same (default: "
                     "run_name, else \"run\")"),
      app.add_option("--rank", flags.rank, "this trainer's rank"),
      app.add_option("--world-size", flags.world_size, "the number of trainers"),
      app.add_option("--rendezvous", flags.rendezvous,
                     "HOST:PORT of the c10d TCPStore, hosted by rank 0 (needed for > 1 trainer)"),
      app.add_option("--rendezvous-key", flags.rendezvous_key,
                     "the group's secret, the same on every rank (default: $SAE_RENDEZVOUS_KEY; "
                     "none when empty); with --controller, each assignment carries one"),
      app.add_option("--servers", flags.servers,
                     "activation servers, HOST:PORT,HOST:PORT,... in shard order"),
      app.add_option("--output", flags.output,
                     "folder for run.yaml, checkpoints, final/ and summary.json (rank 0 writes; "
                     "required there)"),
      app.add_option("--resume", flags.resume, "a checkpoint folder to continue from"),
      app.add_option("--batch-log", flags.batch_log,
                     "append one JSON line per trained batch here (provenance and checksums)"),
      app.add_option("--ready-file", flags.ready_file,
                     "write {pid, metrics_port} as JSON here once the metrics port is bound")};
  for (CLI::Option* option : by_hand) option->excludes(controller);
  app.add_option("--bind-address", flags.bind_address,
                 "address the Gloo transport binds (default: 127.0.0.1 for a loopback "
                 "rendezvous, else this host's address)");
  app.add_option("--backend", flags.backend, "process group: auto, gloo or nccl");
  AddMetricsFlags(app, flags);
  app.add_option("--threads", flags.threads, "LibTorch threads for the SAE (0: one per core)");
  app.add_option("--prefetch-batches", flags.prefetch_batches,
                 "batches received ahead of the step (0: 2 per server, at least 4)");
  app.add_option("--max-batches-per-call", flags.max_batches_per_call,
                 "batches one StreamActivations call may lease");
  app.add_option("--server-deadline", flags.server_deadline_seconds,
                 "seconds an activation server may stay unreachable before the run fails");
  app.add_option("--rendezvous-timeout", flags.rendezvous_timeout_seconds,
                 "seconds to wait for every trainer to join (default: 300; 60 with --controller)");
  app.add_option("--collective-timeout", flags.collective_timeout_seconds,
                 "seconds one all-reduce may take before the run fails (default: 300; 60 with "
                 "--controller)");
  app.add_option("--auth-token", flags.auth_token,
                 "bearer token for the activation servers and the controller (default: "
                 "$SAE_AUTH_TOKEN)");
  app.add_option("--tls-ca", flags.tls_ca,
                 "PEM CA certificates to verify TLS servers (and the controller) with");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (!flags.controller.empty()) {
    absl::Status worked;
    try {
      worked = sae::trainer::RunWorker(flags);
    } catch (const std::exception& e) {
      worked = absl::InternalError(e.what());
    }
    if (!worked.ok()) {
      std::fprintf(stderr, "sae-trainer: error: %s\n", std::string(worked.message()).c_str());
      return sae::service::ExitCodeFor(worked);
    }
    return 0;
  }

  // SIGTERM / SIGINT: checkpoint and stop at the next step boundary (all ranks agree on it).
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
  std::thread signals([&] {
    while (!done.load()) {
      if (const int signal = sae::service::WaitForTerminationSignal(absl::Milliseconds(200))) {
        spdlog::warn("signal {}: checkpointing and stopping at the next step", signal);
        stop = true;
      }
    }
  });
  absl::StatusOr<bool> finished;
  try {
    finished = sae::trainer::Run(flags, &stop);
  } catch (const std::exception& e) {
    finished = absl::InternalError(e.what());  // the signal thread must be joined first
  }
  done = true;
  signals.join();
  if (!finished.ok()) {
    std::fprintf(stderr, "sae-trainer: error: %s\n",
                 std::string(finished.status().message()).c_str());
    return sae::service::ExitCodeFor(finished.status());
  }
  return *finished ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", "sae-trainer", e.what());
    return 1;
  }
}
