// sae-activation-server --controller ADDR: an activation server that serves what the
// controller assigns (docs/operations.md, "Workers under a controller").
//
// The worker registers its --listen address and follows its assignment
// (services/common/worker_agent.h):
//
//   - An assignment starts an ActivationServer on --listen for the run's config and the
//     assigned shard, generating from the assignment's cursor (the furthest this shard reported
//     before; the start of the shard for a new run), and serving the assignment's generation of
//     trainers only (StreamRequest.generation): a trainer of an older generation is refused, so
//     a group the controller replaced cannot take data meant for its successor. A trainer of
//     another run is told to retry (UNAVAILABLE): the server is about to be reassigned to it.
//   - A new generation of the same run and shard keeps the server: model, mixing buffer and
//     frontier stay, so data never rewinds and nothing generated is lost; only the generation
//     served changes. Another run or shard, or a cursor beyond the server's frontier (another
//     server took the shard further meanwhile), restarts it.
//   - No assignment (the run is RESTARTING, or over): the server stops serving at once. It stays
//     loaded for `keep_warm` while its run may come back to it (the controller says the run is
//     still going), and shuts down at once when the run is over.
//   - Every `report_interval` it reports its frontier (ShardCursor bytes) and the tokens it
//     generated in this generation.
//   - A config or data error (the run's files, its shard, a failed forward) is reported FAILED
//     and fatal, and the worker stays idle for that generation. A port it cannot bind is
//     reported FAILED (not fatal: the controller restarts the group).
//
// SIGTERM: the server shuts down gracefully (see ActivationServer::Shutdown) and the worker
// exits; the controller restarts the run when the worker's lease expires.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_WORKER_MODE_H_
#define SAE_SERVICES_ACTIVATION_SERVER_WORKER_MODE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/data/shard_cursor.h"
#include "core/metrics/registry.h"
#include "sae/v1/controller.pb.h"
#include "services/common/health.h"
#include "services/common/rpc.h"

namespace sae::activation_server {

struct ActivationWorkerOptions {
  // host:port of the controller, and its token and TLS roots.
  std::string controller;
  rpc::ClientSecurity controller_security;
  // Optional: where the worker binds its liveness check (the metrics server's /healthz).
  service::HealthSource* health = nullptr;
  // Required: host:port the server listens on, with a fixed port.
  std::string listen;
  // host:port registered with the controller, which trainers are told. Default "": --listen
  // (give the machine's address when listening on 0.0.0.0 for trainers elsewhere).
  std::string advertise;
  // Bearer token and TLS of the server's port.
  rpc::ServerSecurity security;
  // See ActivationServerOptions.
  int max_batches_per_call = 8;
  // How often the frontier and token count are reported.
  absl::Duration report_interval = absl::Milliseconds(500);
  // How long a server whose run is between generations stays loaded, waiting for it.
  absl::Duration keep_warm = absl::Seconds(120);
  // Seconds streams get to finish when the server shuts down.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Optional: the Prometheus registry of the server's series.
  metrics::Registry* metrics = nullptr;
};

// What a worker serves now: one run's shard, under that run's config.
struct ServedShard {
  std::string run_id;
  int32_t shard_index = 0;
  int32_t shard_count = 0;
  std::string config_yaml;
};

// Whether the server of `served`, whose frontier is `frontier`, can go on serving `next`
// (keeping its model, mixing buffer and frontier): the same run, config and shard, and a cursor
// in `next` (the furthest the shard reported) that is not beyond the frontier. A cursor beyond
// it (another server took the shard further meanwhile), or one that does not parse, means a
// fresh server from that cursor: data never rewinds.
bool CanKeepServing(const ServedShard& served, const data::ShardCursor& frontier,
                    const v1::Assignment& next);

// Registers with the controller and serves what it assigns until `wait_for_shutdown` (called
// in a loop; it waits at most its argument) returns true. Returns OK after a shutdown;
// InvalidArgument for missing options; Unavailable when the controller cannot be reached at
// start (for a minute).
absl::Status RunActivationServerWorker(
    const ActivationWorkerOptions& options,
    const std::function<bool(absl::Duration)>& wait_for_shutdown);

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_WORKER_MODE_H_
