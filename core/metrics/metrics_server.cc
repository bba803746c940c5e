#include "core/metrics/metrics_server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/metrics/text_format.h"

namespace sae::metrics {
namespace {

constexpr time_t kReadTimeoutSeconds = 2;
constexpr time_t kWriteTimeoutSeconds = 5;

// httplib's thread pool, counting the connections its workers have taken up.
class CountingThreadPool : public httplib::ThreadPool {
 public:
  CountingThreadPool(size_t threads, std::shared_ptr<std::atomic<int64_t>> taken)
      : httplib::ThreadPool(threads), taken_(std::move(taken)) {}

  void enqueue(std::function<void()> fn) override {
    httplib::ThreadPool::enqueue([taken = taken_, fn = std::move(fn)] {
      taken->fetch_add(1);
      fn();
    });
  }

 private:
  const std::shared_ptr<std::atomic<int64_t>> taken_;
};

// Whether two secrets are equal, in time that depends only on their lengths.
bool SameSecret(absl::string_view given, absl::string_view expected) {
  if (given.size() != expected.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < given.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ expected[i]);
  }
  return difference == 0;
}

// Whether `request` carries `Authorization: Bearer <token>`.
bool CarriesToken(const httplib::Request& request, const std::string& token) {
  const std::string header = request.get_header_value("Authorization");
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWith(header, kBearer)) return false;
  return SameSecret(absl::string_view(header).substr(kBearer.size()), token);
}

// A plain HTTP server, or an HTTPS one with the options' certificate and key.
absl::StatusOr<std::unique_ptr<httplib::Server>> MakeServer(const MetricsServerOptions& options) {
  if (options.tls_cert_file.empty() && options.tls_key_file.empty()) {
    return std::make_unique<httplib::Server>();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "metrics TLS needs both a certificate chain and its private key (--metrics-tls-cert and "
        "--metrics-tls-key), or neither");
  }
  for (const std::string& file : {options.tls_cert_file, options.tls_key_file}) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(file, error)) {
      return absl::NotFoundError(absl::StrCat("metrics TLS file ", file, " does not exist"));
    }
  }
  auto server = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                     options.tls_key_file.c_str());
  if (!server->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics TLS: OpenSSL cannot use the certificate chain ",
                     options.tls_cert_file, " with the private key ", options.tls_key_file,
                     " (PEM files expected, the key matching the first certificate)"));
  }
  return server;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    Registry* registry, const MetricsServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", options.port, " is outside [0, 65535]"));
  }
  for (const MetricsServerOptions::Route& route : options.routes) {
    if (route.method != "GET" && route.method != "POST") {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics server route ", route.pattern, ": method '", route.method,
                       "' is not GET or POST"));
    }
    if (route.pattern == "/metrics" || route.pattern == "/healthz") {
      return absl::InvalidArgumentError(
          absl::StrCat("metrics server route ", route.pattern, " would replace the built-in one"));
    }
  }
  absl::StatusOr<std::unique_ptr<httplib::Server>> made = MakeServer(options);
  if (!made.ok()) return made.status();
  std::unique_ptr<httplib::Server> server = std::move(*made);
  const size_t threads = std::max<size_t>(options.worker_threads, 1);
  auto connections = std::make_shared<std::atomic<int64_t>>(0);
  server->new_task_queue = [threads, connections] {
    return new CountingThreadPool(threads, connections);
  };
  // httplib's default also sets SO_REUSEPORT, which would let a second process bind the same
  // port and silently take half the scrapes. SO_REUSEADDR alone still allows a quick restart.
  server->set_socket_options([](socket_t socket) {
    int on = 1;
    ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  });
  server->set_keep_alive_max_count(1);
  server->set_keep_alive_timeout(1);
  server->set_read_timeout(kReadTimeoutSeconds);
  server->set_write_timeout(kWriteTimeoutSeconds);
  server->Get("/metrics", [registry, token = options.auth_token](const httplib::Request& request,
                                                                 httplib::Response& response) {
    if (!token.empty() && !CarriesToken(request, token)) {
      response.status = 401;
      response.set_header("WWW-Authenticate", "Bearer");
      response.set_content(
          "this endpoint requires the bearer token: send Authorization: Bearer "
          "TOKEN (Prometheus: authorization: {credentials_file: ...})\n",
          "text/plain; charset=utf-8");
      return;
    }
    response.set_content(FormatText(registry->Collect()), kTextFormatContentType);
  });
  server->Get("/healthz", [health = options.health](const httplib::Request&,
                                                     httplib::Response& response) {
    const absl::Status status = health ? health() : absl::OkStatus();
    if (status.ok()) {
      response.set_content("ok\n", "text/plain; charset=utf-8");
    } else {
      response.status = 503;
      response.set_content(absl::StrCat("unhealthy: ", status.message(), "\n"),
                           "text/plain; charset=utf-8");
    }
  });
  for (const MetricsServerOptions::Route& route : options.routes) {
    if (route.method == "GET") {
      server->Get(route.pattern, route.handler);
    } else {
      server->Post(route.pattern, route.handler);
    }
  }

  errno = 0;
  int port = options.port;
  bool bound = port == 0 ? (port = server->bind_to_any_port(options.bind_address)) > 0
                         : server->bind_to_port(options.bind_address, port);
  if (!bound) {
    int error = errno;
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", options.bind_address, ":", options.port,
                     error != 0 ? absl::StrCat(": ", std::strerror(error)) : std::string(),
                     "; pick another --metrics-port or bind address"));
  }
  const bool tls = !options.tls_cert_file.empty();
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(server), port, tls, std::move(connections)));
}

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, int port, bool tls,
                             std::shared_ptr<std::atomic<int64_t>> connections)
    : server_(std::move(server)), port_(port), tls_(tls), connections_(std::move(connections)) {
  thread_ = std::thread([this] {
    // A scraper that hangs up mid-response makes send() raise SIGPIPE, which would kill the
    // process (this httplib build sends without MSG_NOSIGNAL). Blocking it here, before the
    // worker threads are created, makes send() fail with EPIPE instead, for this server's
    // threads only; the signal stays pending on them, harmlessly.
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
    server_->listen_after_bind();
    listen_returned_ = true;
  });
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  std::lock_guard<std::mutex> lock(stop_mutex_);
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the accept loop has started, so a Stop right after Start
  // waits for it (microseconds) rather than leaving the loop running forever.
  while (!listen_returned_ && !server_->is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

}  // namespace sae::metrics
