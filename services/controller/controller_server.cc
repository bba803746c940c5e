#include "services/controller/controller_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "core/metrics/process_metrics.h"
#include "core/util/status.h"
#include "services/controller/console/console_routes.h"
#include "services/common/host_port.h"
#include "spdlog/spdlog.h"

namespace sae::controller {

absl::StatusOr<std::unique_ptr<ControllerServer>> ControllerServer::Start(
    const ControllerServerOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("the controller needs a data folder (--data-dir)");
  }
  SAE_ASSIGN_OR_RETURN(service::HostPort listen, service::SplitHostPort(options.listen, "--listen"));
  std::unique_ptr<ControllerServer> server(new ControllerServer());
  if (listen.IsWildcard()) listen.host = "127.0.0.1";
  server->host_ = listen.host;

  SAE_RETURN_IF_ERROR(metrics::AddProcessMetrics(&server->registry_));
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<RunStore> store, RunStore::Open(options.data_dir));
  if (store->dropped_uploads() > 0) {
    spdlog::warn("dropped {} checkpoint upload(s) left unfinished by the previous controller",
                 store->dropped_uploads());
  }
  // Every progress report of trainer rank 0 goes into the console's history.
  server->history_ = std::make_unique<ProgressHistory>(store.get());
  ControllerOptions controller_options = options.controller;
  controller_options.on_progress = [history = server->history_.get(),
                                    next = options.controller.on_progress](
                                       const v1::Run& run,
                                       const v1::ReportProgressRequest& request, absl::Time now) {
    v1::TrainingMetrics metrics = request.metrics();
    metrics.set_step(request.step());
    metrics.set_tokens(request.tokens());
    std::vector<v1::SaePoint> saes;
    for (const v1::SaeProgress& reported : request.saes()) {
      v1::SaePoint& sae = saes.emplace_back();
      sae.set_name(reported.name());
      *sae.mutable_metrics() = reported.metrics();
      sae.mutable_metrics()->set_step(reported.step());
      sae.mutable_metrics()->set_tokens(request.tokens());
    }
    absl::Status recorded = history->Record(run.run_id(), run.generation(), metrics, now, saes);
    if (!recorded.ok()) {
      spdlog::warn("progress history of run {}: {}", run.run_id(), recorded.ToString());
    }
    if (next) next(run, request, now);
  };
  SAE_ASSIGN_OR_RETURN(server->controller_,
                       Controller::Open(std::move(store), controller_options, &server->registry_));
  server->console_ =
      std::make_unique<ConsoleApi>(server->controller_.get(), server->history_.get());
  server->service_ =
      std::make_unique<ControllerService>(server->controller_.get(), options.security.auth_token);

  SAE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                       rpc::MakeServerCredentials(options.security));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxChunkBytes + (1 << 20)));
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxChunkBytes + (1 << 20)));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                               " (in use, or not an address of this machine)"));
  }

  if (options.metrics_port >= 0) {
    metrics::MetricsServerOptions metrics_options;
    metrics_options.port = options.metrics_port;
    metrics_options.bind_address = options.metrics_bind_address;
    metrics_options.auth_token = options.metrics_security.auth_token;
    metrics_options.tls_cert_file = options.metrics_security.tls_cert_file;
    metrics_options.tls_key_file = options.metrics_security.tls_key_file;
    metrics_options.routes = ConsoleRoutes(server->console_.get(), options.security.auth_token);
    metrics_options.health = [raw = server.get()] { return raw->controller_->CheckHealth(); };
    // Browsers open several connections; a download streams for a while.
    metrics_options.worker_threads = 8;
    SAE_ASSIGN_OR_RETURN(server->metrics_server_,
                         metrics::MetricsServer::Start(&server->registry_, metrics_options));
  }
  server->ticker_ = std::thread([raw = server.get(), tick = options.tick] { raw->TickLoop(tick); });
  return server;
}

ControllerServer::~ControllerServer() { Shutdown(); }

std::string ControllerServer::address() const {
  return service::HostPort{host_, port_}.ToString();
}

int ControllerServer::metrics_port() const {
  return metrics_server_ == nullptr ? -1 : metrics_server_->port();
}

void ControllerServer::TickLoop(absl::Duration tick) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    stop_changed_.wait_for(lock, absl::ToChronoNanoseconds(tick));
    if (stopping_) break;
    lock.unlock();
    controller_->Tick();
    lock.lock();
  }
}

void ControllerServer::Shutdown(absl::Duration grace) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !ticker_.joinable()) return;
    stopping_ = true;
  }
  stop_changed_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
  }
  if (metrics_server_ != nullptr) metrics_server_->Stop();
  // Closing the store waits for nothing: every write was made under the controller's lock.
  console_.reset();
  controller_.reset();
  history_.reset();
}

void ControllerServer::Wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  stop_changed_.wait(lock, [&] { return stopping_; });
}

}  // namespace sae::controller
