// The metrics server's bearer token and TLS, with a CA made in the test.
#include <httplib.h>

#include <memory>
#include <string>

#include "core/metrics/metrics_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"
#include "support/test_certificates.h"

namespace sae::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "metrics-token-5f1d";

class MetricsServerSecurityTest : public ::testing::Test {
 protected:
  MetricsServerSecurityTest() {
    (*registry_.AddCounter("sae_test_scrapes_total", "Scrapes.", {}))->Labels({}).Increment(7);
  }

  std::unique_ptr<MetricsServer> Start(MetricsServerOptions options) {
    options.bind_address = "127.0.0.1";
    options.port = 0;
    absl::StatusOr<std::unique_ptr<MetricsServer>> server =
        MetricsServer::Start(&registry_, options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  support::TestCertificates Certificates() {
    absl::StatusOr<support::TestCertificates> certificates =
        support::MakeTestCertificates(dir_.path());
    EXPECT_TRUE(certificates.ok()) << certificates.status();
    return certificates.ok() ? *certificates : support::TestCertificates{};
  }

  Registry registry_;
  support::TempDir dir_;
};

TEST_F(MetricsServerSecurityTest, MetricsNeedTheBearerTokenWhileHealthzStaysOpen) {
  MetricsServerOptions options;
  options.auth_token = kToken;
  std::unique_ptr<MetricsServer> server = Start(options);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());

  httplib::Result anonymous = client.Get("/metrics");
  ASSERT_TRUE(anonymous) << httplib::to_string(anonymous.error());
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_THAT(anonymous->body, Not(HasSubstr("sae_test_scrapes_total")));

  for (const std::string& wrong :
       {std::string("Bearer wrong"), std::string("Bearer ") + kToken + "x",
        std::string("Bearer ") + std::string(kToken).substr(1), std::string("Basic ") + kToken,
        std::string(kToken), std::string("Bearer")}) {
    httplib::Result refused = client.Get("/metrics", {{"Authorization", wrong}});
    ASSERT_TRUE(refused) << wrong;
    EXPECT_EQ(refused->status, 401) << wrong;
    EXPECT_THAT(refused->body, Not(HasSubstr("sae_test_scrapes_total"))) << wrong;
  }

  httplib::Result scraped =
      client.Get("/metrics", {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(scraped) << httplib::to_string(scraped.error());
  EXPECT_EQ(scraped->status, 200);
  EXPECT_THAT(scraped->body, HasSubstr("sae_test_scrapes_total 7"));

  httplib::Result probe = client.Get("/healthz");
  ASSERT_TRUE(probe) << httplib::to_string(probe.error());
  EXPECT_EQ(probe->status, 200);
  EXPECT_EQ(probe->body, "ok\n");
}

TEST_F(MetricsServerSecurityTest, WithoutATokenMetricsStayOpen) {
  std::unique_ptr<MetricsServer> server = Start(MetricsServerOptions{});
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result scraped = client.Get("/metrics", {{"Authorization", "Bearer anything"}});
  ASSERT_TRUE(scraped) << httplib::to_string(scraped.error());
  EXPECT_EQ(scraped->status, 200);
  EXPECT_THAT(scraped->body, HasSubstr("sae_test_scrapes_total 7"));
}

TEST_F(MetricsServerSecurityTest, ServesHttpsToClientsTrustingItsCaAndRefusesPlaintext) {
  const support::TestCertificates certificates = Certificates();
  ASSERT_FALSE(certificates.ca.empty());
  MetricsServerOptions options;
  options.tls_cert_file = certificates.server_cert;
  options.tls_key_file = certificates.server_key;
  options.auth_token = kToken;
  std::unique_ptr<MetricsServer> server = Start(options);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());

  httplib::SSLClient trusting("127.0.0.1", server->port());
  trusting.set_ca_cert_path(certificates.ca.c_str());
  trusting.enable_server_certificate_verification(true);
  httplib::Result scraped =
      trusting.Get("/metrics", {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(scraped) << httplib::to_string(scraped.error());
  EXPECT_EQ(scraped->status, 200);
  EXPECT_THAT(scraped->body, HasSubstr("sae_test_scrapes_total 7"));
  // TLS does not stand in for the token.
  httplib::Result anonymous = trusting.Get("/metrics");
  ASSERT_TRUE(anonymous) << httplib::to_string(anonymous.error());
  EXPECT_EQ(anonymous->status, 401);
  httplib::Result probe = trusting.Get("/healthz");
  ASSERT_TRUE(probe) << httplib::to_string(probe.error());
  EXPECT_EQ(probe->status, 200);

  httplib::SSLClient distrusting("127.0.0.1", server->port());
  distrusting.set_ca_cert_path(certificates.other_ca.c_str());
  distrusting.enable_server_certificate_verification(true);
  httplib::Result unverified =
      distrusting.Get("/metrics", {{"Authorization", std::string("Bearer ") + kToken}});
  EXPECT_FALSE(unverified);
  EXPECT_EQ(unverified.error(), httplib::Error::SSLServerVerification);

  httplib::Client plaintext("127.0.0.1", server->port());
  plaintext.set_read_timeout(5, 0);
  for (const char* path : {"/metrics", "/healthz"}) {
    httplib::Result refused =
        plaintext.Get(path, {{"Authorization", std::string("Bearer ") + kToken}});
    EXPECT_FALSE(refused) << path << " answered " << refused->status << " over plain HTTP";
  }
}

TEST_F(MetricsServerSecurityTest, RefusesHalfATlsConfigurationAndFilesOpenSslCannotUse) {
  const support::TestCertificates certificates = Certificates();
  ASSERT_FALSE(certificates.ca.empty());
  MetricsServerOptions options;
  options.bind_address = "127.0.0.1";
  options.tls_cert_file = certificates.server_cert;
  absl::StatusOr<std::unique_ptr<MetricsServer>> half = MetricsServer::Start(&registry_, options);
  EXPECT_EQ(half.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(half.status().message(), HasSubstr("--metrics-tls-key"));

  options.tls_key_file = dir_.path() + "/missing.key";
  absl::StatusOr<std::unique_ptr<MetricsServer>> missing =
      MetricsServer::Start(&registry_, options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.key"));

  // The CA's certificate does not match the server's key.
  options.tls_cert_file = certificates.ca;
  options.tls_key_file = certificates.server_key;
  absl::StatusOr<std::unique_ptr<MetricsServer>> mismatched =
      MetricsServer::Start(&registry_, options);
  EXPECT_EQ(mismatched.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mismatched.status().message(), HasSubstr(certificates.ca));
}

}  // namespace
}  // namespace sae::metrics
