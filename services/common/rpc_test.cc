#include "services/common/rpc.h"

#include <grpcpp/health_check_service_interface.h>

#include <cstdlib>

#include "gtest/gtest.h"
#include "sae/v1/controller.grpc.pb.h"
#include "services/common/sha256.h"

namespace sae::rpc {
namespace {

TEST(RpcTest, StatusesKeepTheirCodeAndMessageBothWays) {
  absl::Status original = absl::FailedPreconditionError("stop it first");
  grpc::Status converted = ToGrpcStatus(original);
  EXPECT_EQ(converted.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(converted.error_message(), "stop it first");
  EXPECT_EQ(ToAbslStatus(converted), original);
  EXPECT_TRUE(ToAbslStatus(grpc::Status::OK).ok());
}

TEST(RpcTest, TlsNeedsBothCertificateAndKey) {
  ServerSecurity security;
  security.tls_cert_file = "/some/cert.pem";
  EXPECT_TRUE(absl::IsInvalidArgument(MakeServerCredentials(security).status()));
  EXPECT_TRUE(MakeServerCredentials(ServerSecurity{}).ok());
}

TEST(RpcTest, ChannelCredentialsArePlaintextWithoutACaFileAndAnErrorNamingAnUnreadableOne) {
  ClientSecurity plaintext;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> none = ChannelCredentialsFor(plaintext);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_NE(*none, nullptr);
  ClientSecurity tls;
  tls.tls_ca_file = "/nonexistent/ca.pem";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> missing = ChannelCredentialsFor(tls);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("/nonexistent/ca.pem"), std::string::npos)
      << missing.status();
  EXPECT_FALSE(CreateChannel("127.0.0.1:1", tls).ok()) << "the channel fails the same way";
}

TEST(RpcTest, FlagWinsOverTheEnvironment) {
  ::setenv("SAE_RPC_TEST_TOKEN", "from-env", 1);
  EXPECT_EQ(FlagOrEnv("from-flag", "SAE_RPC_TEST_TOKEN"), "from-flag");
  EXPECT_EQ(FlagOrEnv("", "SAE_RPC_TEST_TOKEN"), "from-env");
  ::unsetenv("SAE_RPC_TEST_TOKEN");
  EXPECT_EQ(FlagOrEnv("", "SAE_RPC_TEST_TOKEN"), "");
}

TEST(RpcTest, HealthCheckAnswersServingForARunningServer) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  v1::Controller::Service unimplemented;  // a server needs one service besides health
  builder.RegisterService(&unimplemented);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto channel = CreateChannel("127.0.0.1:" + std::to_string(port), ClientSecurity{});
  ASSERT_TRUE(channel.ok());
  absl::Status healthy = CheckHealth(*channel, "", absl::Seconds(10));
  EXPECT_TRUE(healthy.ok()) << healthy;
  server->Shutdown();
}

TEST(RpcTest, HealthCheckOfANonexistentServerIsUnavailable) {
  auto channel = CreateChannel("127.0.0.1:1", ClientSecurity{});
  ASSERT_TRUE(channel.ok());
  EXPECT_TRUE(absl::IsUnavailable(CheckHealth(*channel, "", absl::Milliseconds(300))));
}

TEST(Sha256Test, MatchesTheKnownDigestOfAbc) {
  std::string digest = Sha256::Of("abc");
  ASSERT_EQ(digest.size(), 32u);
  EXPECT_EQ(static_cast<unsigned char>(digest[0]), 0xba);
  EXPECT_EQ(static_cast<unsigned char>(digest[31]), 0xad);
  Sha256 incremental;
  incremental.Update("a");
  incremental.Update("bc");
  EXPECT_EQ(incremental.Finish(), digest);
}

}  // namespace
}  // namespace sae::rpc
