// An HTTP(S) endpoint serving a Registry to Prometheus: GET /metrics and GET /healthz.
#ifndef SAE_CORE_METRICS_METRICS_SERVER_H_
#define SAE_CORE_METRICS_METRICS_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "core/metrics/registry.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace sae::metrics {

struct MetricsServerOptions {
  // Address to listen on. The default, "0.0.0.0", lets a Prometheus on another host scrape;
  // "127.0.0.1" keeps the endpoint local (tests).
  std::string bind_address = "0.0.0.0";

  // TCP port. 0 (the default) lets the kernel pick a free one; MetricsServer::port() tells which.
  int port = 0;

  // Further routes, served beside /metrics and /healthz (which they cannot replace), e.g. the
  // controller's web console. `method` is "GET" or "POST"; `pattern` is an httplib path pattern
  // (an ECMAScript regular expression matched against the whole path; groups land in
  // Request::matches). Handlers run on the server's worker threads, concurrently.
  struct Route {
    std::string method;
    std::string pattern;
    std::function<void(const httplib::Request&, httplib::Response&)> handler;
  };
  std::vector<Route> routes;

  // What GET /healthz checks: 200 "ok" when unset or when it returns OK, else 503 with the
  // status's message (container and Kubernetes probes restart or unroute the process). Runs on
  // a server thread for every probe: it must be quick and thread-safe.
  std::function<absl::Status()> health;

  // The bearer token GET /metrics requires: a request without `Authorization: Bearer <token>`
  // (compared in constant time) gets 401 with `WWW-Authenticate: Bearer`. /healthz stays open
  // (container and Kubernetes probes carry no secret; it tells only "ok" or why not), and
  // `routes` check a token themselves (the controller's console does). Default "": open.
  std::string auth_token;

  // PEM certificate chain and private key: serve HTTPS only (a plaintext request fails its TLS
  // handshake and gets no answer). Both empty (the default): plain HTTP.
  std::string tls_cert_file;
  std::string tls_key_file;

  // Threads serving requests. Two let a scrape and a health check overlap; a server with
  // routes that stream (downloads) or serve browsers wants more.
  size_t worker_threads = 2;
};

// Serves, on its own thread:
//   GET /metrics  the registry's text exposition (Content-Type kTextFormatContentType), after
//                 running its collectors;
//   GET /healthz  "ok" (200), or "unhealthy: <why>" (503) when options.health says so;
//   options.routes.
// Anything else is 404. Connections are not kept alive: a scrape every few seconds gains nothing
// from it, and it keeps Stop prompt.
class MetricsServer {
 public:
  // Listens on options.bind_address:options.port and starts serving `registry`, which must
  // outlive the server. The port is bound when this returns, so a scrape may follow at once.
  // InvalidArgument for a port outside [0, 65535], a route of another method than GET or POST,
  // a route on /metrics or /healthz, only one of tls_cert_file and tls_key_file, or a
  // certificate and key OpenSSL cannot load; NotFound when one of them is missing; Unavailable
  // when the address cannot be bound (the port is in use, or the address is not local).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(Registry* registry,
                                                              const MetricsServerOptions& options);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Stops the server (see Stop).
  ~MetricsServer();

  // The port it listens on: options.port, or the one the kernel picked when that was 0.
  int port() const { return port_; }

  // Whether it serves HTTPS (options.tls_cert_file was given).
  bool tls() const { return tls_; }

  // Connections a worker thread has taken up so far (each then reads its request).
  int64_t connections_taken() const { return connections_->load(); }

  // Stops listening, waits for requests in progress and joins the thread. Returns within
  // milliseconds unless a client is mid-request, and within the read timeout (2 s) if that
  // client stalls. Idempotent and thread-safe; must not be called from a request handler.
  void Stop();

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, int port, bool tls,
                std::shared_ptr<std::atomic<int64_t>> connections);

  const std::unique_ptr<httplib::Server> server_;
  const int port_;
  const bool tls_;
  const std::shared_ptr<std::atomic<int64_t>> connections_;
  std::atomic<bool> listen_returned_{false};
  std::mutex stop_mutex_;
  std::thread thread_;
};

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_METRICS_SERVER_H_
