// The activation server's bearer token and TLS, over real gRPC with a CA made for the test: a
// trainer that trusts the CA and carries the token is served; one without the token, with
// another token, trusting another CA, or speaking plaintext is not.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "core/training/run_assets.h"
#include "core/wire/run_digest.h"
#include "sae/v1/activations.grpc.pb.h"
#include "services/activation_server/activation_server.h"
#include "services/common/rpc.h"
#include "services/common/stream_protocol.h"
#include "support/temp_dir.h"
#include "support/test_certificates.h"
#include "support/tiny_run.h"

namespace sae::activation_server {
namespace {

constexpr char kToken[] = "activation-token-4242";

// GetServerStatus and one batch of StreamActivations through a channel with `security`.
struct Answers {
  grpc::Status status;
  grpc::Status stream;
  int batches = 0;
};

Answers Ask(int port, const config::RunConfig& config, const rpc::ClientSecurity& security) {
  auto channel = rpc::CreateChannel("127.0.0.1:" + std::to_string(port), security);
  EXPECT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::ActivationService::NewStub(*channel);
  Answers answers;
  {
    grpc::ClientContext context;
    rpc::PrepareCall(&context, security, absl::Seconds(10));
    v1::ServerStatus status;
    answers.status = stub->GetServerStatus(&context, {}, &status);
  }
  grpc::ClientContext context;
  rpc::PrepareCall(&context, security, absl::Seconds(60));
  v1::StreamRequest request;
  request.set_run_id(wire::DefaultRunId(config));
  request.set_config_digest(wire::RunConfigDigest(config));
  request.set_consumer_rank(0);
  request.set_consumer_count(1);
  request.set_consumer_session("security-test");
  request.set_wire_dtype(stream::ToWire(config::DType::kFloat32));
  request.set_batch_size(config.train_batch_size);
  request.set_max_batches(1);
  auto reader = stub->StreamActivations(&context, request);
  v1::ActivationBatch batch;
  while (reader->Read(&batch)) ++answers.batches;
  answers.stream = reader->Finish();
  return answers;
}

TEST(ActivationServerSecurityTest, ServesOnlyTrainersThatTrustItsCaAndCarryTheToken) {
  support::TempDir dir;
  ASSERT_TRUE(support::WriteTinyRunFiles(dir.path()).ok());
  absl::StatusOr<support::TestCertificates> certificates =
      support::MakeTestCertificates(dir.path());
  ASSERT_TRUE(certificates.ok()) << certificates.status();
  config::RunConfig config = support::ParseTinyRun(dir.path(), {"shuffle=false"});
  ASSERT_TRUE(training::ResolveRunConfig(config).ok());
  ActivationServerOptions options;
  options.config = config;
  options.listen = "127.0.0.1:0";
  options.security.auth_token = kToken;
  options.security.tls_cert_file = certificates->server_cert;
  options.security.tls_key_file = certificates->server_key;
  auto server = ActivationServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();

  rpc::ClientSecurity trusted{kToken, certificates->ca};
  Answers served = Ask((*server)->port(), config, trusted);
  EXPECT_TRUE(served.status.ok()) << served.status.error_message();
  EXPECT_TRUE(served.stream.ok()) << served.stream.error_message();
  EXPECT_EQ(served.batches, 1);

  for (const std::string& token : {std::string(), std::string("guess")}) {
    Answers refused = Ask((*server)->port(), config, {token, certificates->ca});
    EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    EXPECT_EQ(refused.stream.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    EXPECT_EQ(refused.batches, 0);
  }
  Answers other_ca = Ask((*server)->port(), config, {kToken, certificates->other_ca});
  EXPECT_EQ(other_ca.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << "a trainer that trusts another CA: " << other_ca.status.error_message();
  EXPECT_EQ(other_ca.batches, 0);
  Answers plaintext = Ask((*server)->port(), config, {kToken, ""});
  EXPECT_FALSE(plaintext.status.ok()) << "a plaintext trainer, a TLS port";
  EXPECT_EQ(plaintext.batches, 0);
  (*server)->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace sae::activation_server
