#include "services/common/rpc.h"

#include <grpcpp/generic/generic_stub.h>
#include <openssl/crypto.h>

#include <chrono>
#include <cstdlib>
#include <future>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::rpc {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ClientSecurity& security) {
  if (security.tls_ca_file.empty()) return grpc::InsecureChannelCredentials();
  SAE_ASSIGN_OR_RETURN(std::string roots, ReadFile(security.tls_ca_file));
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = std::move(roots);
  return grpc::SslCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const std::string& address,
                                                             const ClientSecurity& security) {
  if (address.empty()) return absl::InvalidArgumentError("no server address given (host:port)");
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                       ChannelCredentialsFor(security));
  grpc::ChannelArguments arguments;
  // Checkpoint chunks are 1 MiB; leave room for framing.
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  // Reconnect within seconds once a restarted server is back (gRPC's default backoff grows to
  // two minutes, which would leave workers silent long past their lease).
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

void PrepareCall(grpc::ClientContext* context, const ClientSecurity& security,
                 absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!security.auth_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", security.auth_token));
  }
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security) {
  if (security.tls_cert_file.empty() && security.tls_key_file.empty()) {
    return grpc::InsecureServerCredentials();
  }
  if (security.tls_cert_file.empty() || security.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  SAE_ASSIGN_OR_RETURN(pair.cert_chain, ReadFile(security.tls_cert_file));
  SAE_ASSIGN_OR_RETURN(pair.private_key, ReadFile(security.tls_key_file));
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back(std::move(pair));
  return grpc::SslServerCredentials(options);
}

grpc::Status BearerTokenCheck::Check(const grpc::ServerContext& context) const {
  if (token_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    LogRefusal(context, "no bearer token");
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this server needs a bearer token (authorization: Bearer <token>)");
  }
  std::string value(it->second.data(), it->second.size());
  std::string expected = absl::StrCat("Bearer ", token_);
  if (value.size() != expected.size() ||
      CRYPTO_memcmp(value.data(), expected.data(), value.size()) != 0) {
    LogRefusal(context, "wrong bearer token");
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
  }
  return grpc::Status::OK;
}

int64_t BearerTokenCheck::refused() const {
  absl::MutexLock lock(&mutex_);
  return refused_;
}

void BearerTokenCheck::LogRefusal(const grpc::ServerContext& context, const char* why) const {
  int64_t stands_for = 0;
  {
    absl::MutexLock lock(&mutex_);
    ++refused_;
    ++unlogged_;
    const absl::Time now = absl::Now();
    if (now - last_logged_ < kRefusalLogInterval) return;
    last_logged_ = now;
    stands_for = unlogged_;
    unlogged_ = 0;
  }
  // The peer's address and why only: what the client sent may be a real token.
  spdlog::warn("refused a call from {} ({}){}", context.peer(), why,
               stands_for > 1 ? absl::StrCat("; ", stands_for, " calls refused since the last "
                                             "such line (at most one line per ",
                                             absl::FormatDuration(kRefusalLogInterval), ")")
                              : std::string());
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string FlagOrEnv(const std::string& flag_value, const char* env_name) {
  if (!flag_value.empty()) return flag_value;
  const char* value = std::getenv(env_name);
  return value == nullptr ? "" : value;
}

absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         absl::Duration timeout) {
  // HealthCheckRequest { string service = 1; }, written by hand: grpc++ ships the service but
  // not the generated client.
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back(0x0a);
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes += service;
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(true);
  grpc::GenericStub stub(channel);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("health check failed: ", status.error_message()));
  }
  std::vector<grpc::Slice> slices;
  std::string body;
  if (response.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      body.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse { ServingStatus status = 1; } with SERVING = 1.
  if (body != std::string("\x08\x01", 2)) {
    return absl::UnavailableError("the server answers its health check with NOT_SERVING");
  }
  return absl::OkStatus();
}

}  // namespace sae::rpc
