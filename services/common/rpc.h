// gRPC plumbing shared by every process of the service: channels and server credentials with
// optional TLS, the optional bearer token, deadlines, and Status conversions.
//
// Every port of the service can be protected the same way (docs/operations.md): a server started with
// an auth token refuses calls that do not carry `authorization: Bearer <token>` with
// UNAUTHENTICATED, and a server started with a certificate and key speaks TLS. The
// grpc.health.v1 service stays open, as load balancers and Kubernetes probes expect.
#ifndef SAE_SERVICES_COMMON_RPC_H_
#define SAE_SERVICES_COMMON_RPC_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sae::rpc {

// The environment variable every binary reads the bearer token from when no flag gives one.
inline constexpr char kAuthTokenEnv[] = "SAE_AUTH_TOKEN";

// How a client reaches a server.
struct ClientSecurity {
  // Sent as `authorization: Bearer <token>` with every call. Default "": no token.
  std::string auth_token;
  // PEM file of the CA certificates the server's certificate chains to. Default "": plaintext.
  std::string tls_ca_file;
};

// The credentials of `security`: TLS with its CA file's roots, or plaintext when it names none.
// NotFound and the like when the CA file is unreadable.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ClientSecurity& security);

// A channel to `address` ("host:port"). It connects lazily, on the first call.
// InvalidArgument for an empty address; NotFound and the like when the CA file is unreadable.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const std::string& address,
                                                             const ClientSecurity& security);

// Prepares `context` for one call: a deadline `timeout` from now, and the bearer token.
void PrepareCall(grpc::ClientContext* context, const ClientSecurity& security,
                 absl::Duration timeout);

// What a server needs to protect its port.
struct ServerSecurity {
  // Calls must carry this bearer token. Default "": every call is accepted.
  std::string auth_token;
  // PEM certificate chain and private key. Both empty (the default): plaintext; both set: TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Plaintext or TLS credentials for ServerBuilder::AddListeningPort. InvalidArgument when only one
// of the certificate and key is given; NotFound and the like when they cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSecurity& security);

// The per-call token check of a service: each handler starts with
//   if (grpc::Status denied = auth_.Check(*context); !denied.ok()) return denied;
// A refused call is logged (method, peer, why; never a token), at most one line per
// `kRefusalLogInterval`, which counts the refusals it stands for. Thread-safe.
class BearerTokenCheck {
 public:
  static constexpr absl::Duration kRefusalLogInterval = absl::Seconds(10);

  // An empty `token` accepts every call.
  explicit BearerTokenCheck(std::string token) : token_(std::move(token)) {}

  // OK when no token is configured or the call carries `authorization: Bearer <token>`
  // (compared in constant time); UNAUTHENTICATED otherwise.
  grpc::Status Check(const grpc::ServerContext& context) const;

  // Calls refused so far.
  int64_t refused() const;

 private:
  void LogRefusal(const grpc::ServerContext& context, const char* why) const;

  const std::string token_;
  mutable absl::Mutex mutex_;
  mutable int64_t refused_ ABSL_GUARDED_BY(mutex_) = 0;
  mutable int64_t unlogged_ ABSL_GUARDED_BY(mutex_) = 0;
  mutable absl::Time last_logged_ ABSL_GUARDED_BY(mutex_) = absl::InfinitePast();
};

// Status conversions; the two libraries share their code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status ToAbslStatus(const grpc::Status& status);

// `flag_value` when not empty, else the value of the environment variable `env_name` ("" when
// unset).
std::string FlagOrEnv(const std::string& flag_value, const char* env_name);

// Asks the server's grpc.health.v1.Health/Check about `service` ("": the whole server).
// OK when it answers SERVING; Unavailable when it answers anything else or cannot be reached
// within `timeout`.
absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                         absl::Duration timeout);

}  // namespace sae::rpc

#endif  // SAE_SERVICES_COMMON_RPC_H_
