// What both ends of ActivationService.StreamActivations share: the wire dtype mapping, the
// channel and server settings a stream of multi-megabyte messages needs, and the service name
// the health service reports.
#ifndef SAE_SERVICES_COMMON_STREAM_PROTOCOL_H_
#define SAE_SERVICES_COMMON_STREAM_PROTOCOL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"
#include "sae/v1/activations.pb.h"
#include "services/common/rpc.h"

namespace sae::stream {

// The name grpc.health.v1 knows the service by.
inline constexpr char kActivationServiceName[] = "sae.v1.ActivationService";

// run.yaml dtype <-> proto enum. FromWire: InvalidArgument for a value outside the enum.
v1::WireDtype ToWire(config::DType dtype);
absl::StatusOr<config::DType> FromWire(int wire_dtype);

// A channel to an activation server for a trainer: credentials as rpc::CreateChannel makes
// them, no limit on the size of a received batch, and keepalive pings every 10 s (answered
// within 10 s) so that a server that vanished without closing its connection is noticed.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateStreamChannel(
    const std::string& address, const rpc::ClientSecurity& security);

// Server settings that match: clients may ping every 5 s, even between calls.
void ConfigureStreamServer(grpc::ServerBuilder& builder);

}  // namespace sae::stream

#endif  // SAE_SERVICES_COMMON_STREAM_PROTOCOL_H_
