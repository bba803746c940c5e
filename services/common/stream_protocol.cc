#include "services/common/stream_protocol.h"

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace sae::stream {

v1::WireDtype ToWire(config::DType dtype) {
  switch (dtype) {
    case config::DType::kFloat32:
      return v1::WIRE_DTYPE_F32;
    case config::DType::kBFloat16:
      return v1::WIRE_DTYPE_BF16;
    case config::DType::kFloat16:
      return v1::WIRE_DTYPE_F16;
  }
  return v1::WIRE_DTYPE_F32;
}

absl::StatusOr<config::DType> FromWire(int wire_dtype) {
  switch (wire_dtype) {
    case v1::WIRE_DTYPE_F32:
      return config::DType::kFloat32;
    case v1::WIRE_DTYPE_BF16:
      return config::DType::kBFloat16;
    case v1::WIRE_DTYPE_F16:
      return config::DType::kFloat16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown wire dtype ", wire_dtype, " (f32, bf16 or f16)"));
  }
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateStreamChannel(
    const std::string& address, const rpc::ClientSecurity& security) {
  if (address.empty()) return absl::InvalidArgumentError("no server address given (host:port)");
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                       rpc::ChannelCredentialsFor(security));
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // a batch is rows x d_in x 2-4 bytes: megabytes
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnect quickly after a server restart; the reader adds its own backoff on top.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  // One channel per server and reader: do not share a TCP connection with other channels.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, credentials, arguments);
}

void ConfigureStreamServer(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.SetMaxReceiveMessageSize(1 << 20);  // requests are small
  builder.SetMaxSendMessageSize(-1);
}

}  // namespace sae::stream
