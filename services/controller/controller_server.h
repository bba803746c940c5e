// A whole controller in one object: the store in the data folder, the Controller, the gRPC
// server (Controller service and grpc.health.v1), /metrics and the web console on the metrics
// port (console/console_routes.h), and the thread that ticks leases.
// sae-controller's main is this plus flags; tests start it in-process on a free loopback port.
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_SERVER_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/metrics/metrics_server.h"
#include "core/metrics/registry.h"
#include "services/common/rpc.h"
#include "services/controller/controller.h"
#include "services/controller/console/console_api.h"
#include "services/controller/console/progress_history.h"
#include "services/controller/controller_service.h"

namespace sae::controller {

struct ControllerServerOptions {
  // host:port to serve gRPC on. Port 0 picks a free port (see ControllerServer::port()).
  std::string listen = "127.0.0.1:7070";
  // Required: the folder of the RocksDB store (created when missing).
  std::string data_dir;
  // /metrics and web console port: -1 (the default) serves none, 0 picks a free port. The
  // console requires security.auth_token when it is set.
  int metrics_port = -1;
  // Address /metrics binds to.
  std::string metrics_bind_address = "0.0.0.0";
  // The metrics port's protection: auth_token "" leaves /metrics open (the console requires
  // security.auth_token whenever that is set); a certificate and key serve HTTPS.
  rpc::ServerSecurity metrics_security;
  // Bearer token and TLS of the gRPC port.
  rpc::ServerSecurity security;
  ControllerOptions controller;
  // How often leases and stop timeouts are checked.
  absl::Duration tick = absl::Milliseconds(100);
};

class ControllerServer {
 public:
  // Opens the store (recovering every run), binds the ports and starts serving.
  // InvalidArgument for a missing data folder or a bad listen address; Unavailable when a port
  // cannot be bound; the store's errors when it cannot be opened (another controller holds it).
  static absl::StatusOr<std::unique_ptr<ControllerServer>> Start(
      const ControllerServerOptions& options);

  ControllerServer(const ControllerServer&) = delete;
  ControllerServer& operator=(const ControllerServer&) = delete;
  // Shutdown().
  ~ControllerServer();

  // The bound gRPC port, and "host:port" to reach it.
  int port() const { return port_; }
  std::string address() const;
  // The bound /metrics port, or -1.
  int metrics_port() const;

  Controller& controller() { return *controller_; }
  metrics::Registry& registry() { return registry_; }

  // Stops accepting calls, gives calls in progress `grace` to finish (then cancels them),
  // stops the tick thread and /metrics, and closes the store. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

  // Blocks until Shutdown() was called (from another thread).
  void Wait();

 private:
  ControllerServer() = default;
  void TickLoop(absl::Duration tick);

  std::string host_;
  int port_ = 0;
  metrics::Registry registry_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<ControllerService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  // The console's progress history (recorded by the controller) and API. Declared before
  // controller_ is reset in Shutdown, used only while the metrics server serves.
  std::unique_ptr<ProgressHistory> history_;
  std::unique_ptr<ConsoleApi> console_;

  std::mutex mutex_;  // Guards stopping_.
  std::condition_variable stop_changed_;
  bool stopping_ = false;
  std::thread ticker_;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_SERVER_H_
