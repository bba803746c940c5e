// Checks the exposition with the real tools from Debian's prometheus package: promtool's parser
// and linter, and a Prometheus server that scrapes a MetricsServer and answers a query.
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics/metrics_server.h"
#include "core/metrics/process_metrics.h"
#include "core/metrics/registry.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/child_process.h"
#include "support/ports.h"
#include "support/temp_dir.h"
#include "support/test_certificates.h"

namespace sae::metrics {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

constexpr char kInstallHint[] =
    " not found in PATH or /usr/bin; run scripts/install-deps.sh, which installs Debian's "
    "prometheus package";

using support::ChildProcess;
using support::FindExecutable;
using support::FreeLoopbackPort;
using support::ReadWholeFile;
using support::TempDir;

// A registry with every kind of metric we produce: labelled and unlabelled counters, gauges
// holding NaN and infinities, histograms with default and custom buckets, families with no
// children, escaped help and label values, and the process metrics.
void FillWithEveryKind(Registry* registry) {
  Family<Counter>* tokens = *registry->AddCounter(
      "sae_test_tokens_total", "Tokens trained, in global tokens.", {"run_id", "rank"});
  tokens->Labels({"run-1", "0"}).Increment(12345);
  tokens->Labels({"run \"quoted\" \\ and\nnewline", "1"}).Increment(1);
  (*registry->AddCounter("sae_test_reconnects_total", "Stream reconnects.", {}))
      ->Labels()
      .Increment(2);
  ASSERT_TRUE(registry->AddCounter("sae_test_unused_total", "Never updated.", {"server"}).ok());
  Family<Gauge>* loss = *registry->AddGauge(
      "sae_test_loss", "Overall loss.\nSecond line with \\ backslash.", {"run_id"});
  loss->Labels({"finite"}).Set(0.125);
  loss->Labels({"nan"}).Set(kNaN);
  loss->Labels({"inf"}).Set(kInf);
  loss->Labels({"minus-inf"}).Set(-kInf);
  loss->Labels({"caf\xC3\xA9"}).Set(-1e-9);
  Family<Histogram>* step = *registry->AddHistogram(
      "sae_test_step_duration_seconds", "Time of one training step.", {"run_id", "rank"});
  Histogram& run_step = step->Labels({"run-1", "0"});
  for (double seconds : {0.003, 0.02, 0.02, 0.7, 30.0}) run_step.Observe(seconds);
  (*registry->AddHistogram("sae_test_batch_bytes", "Batch sizes in bytes.", {},
                           ExponentialBuckets(1024, 4, 6)))
      ->Labels()
      .Observe(3e6);
  ASSERT_TRUE(registry->AddHistogram("sae_test_unused_seconds", "Never observed.", {"rank"}).ok());
  ASSERT_TRUE(AddProcessMetrics(registry).ok());
}

MetricsServerOptions Loopback() {
  MetricsServerOptions options;
  options.bind_address = "127.0.0.1";
  options.port = 0;
  return options;
}

TEST(PromtoolTest, AcceptsTheServedExpositionOfEveryKindOfMetric) {
  std::string promtool = FindExecutable("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool" << kInstallHint;
  Registry registry;
  FillWithEveryKind(&registry);
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start(&registry, Loopback());
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Result response = httplib::Client("127.0.0.1", (*server)->port()).Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  ASSERT_EQ(response->status, 200);

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string exposition_path = dir.path() + "/metrics.txt";
  std::ofstream(exposition_path) << response->body;
  std::string command = promtool + " check metrics < " + exposition_path + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool says:\n"
                                    << output << "\nabout:\n"
                                    << response->body;
  EXPECT_EQ(output, "");
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// The value of the single series `query` returns on Prometheus at `port`, or nullopt while there
// is none.
std::optional<std::string> QueryValue(int port, const std::string& query) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5);
  httplib::Result response = client.Get(("/api/v1/query?query=" + UrlEncode(query)).c_str());
  if (!response || response->status != 200) return std::nullopt;
  nlohmann::json body = nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || body.value("status", "") != "success") return std::nullopt;
  const nlohmann::json& result = body["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return result[0]["value"][1].get<std::string>();
}

// A scrape job of 127.0.0.1:`target_port`, with `extra` lines (indented by 4) in the job.
std::string ScrapeJob(const std::string& name, int target_port, const std::string& extra = "") {
  return "  - job_name: " + name + "\n" + extra +
         "    static_configs:\n"
         "      - targets: ['127.0.0.1:" +
         std::to_string(target_port) + "']\n";
}

// A Prometheus server running `jobs` (ScrapeJob) every second.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, const std::string& dir, int target_port)
      : PrometheusServer(binary, dir,
                         std::vector<std::string>{ScrapeJob("sae_metrics_test", target_port)}) {}

  PrometheusServer(const std::string& binary, const std::string& dir,
                   const std::vector<std::string>& jobs)
      : dir_(dir) {
    std::ofstream config(dir + "/prometheus.yml");
    config << "global:\n"
              "  scrape_interval: 1s\n"
              "  scrape_timeout: 1s\n"
              "scrape_configs:\n";
    for (const std::string& job : jobs) config << job;
    config.close();
    // Another process may take the free port before Prometheus binds it; then try another.
    for (int attempt = 0; attempt < 3 && port_ < 0; ++attempt) {
      int port = FreeLoopbackPort();
      process_ = std::make_unique<ChildProcess>(
          std::vector<std::string>{binary, "--config.file=" + dir + "/prometheus.yml",
                                   "--storage.tsdb.path=" + dir + "/data",
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port)},
          log_path());
      if (WaitUntilReady(port)) port_ = port;
    }
  }

  // The port its HTTP API listens on, or -1 when it did not start.
  int port() const { return port_; }
  std::string log_path() const { return dir_ + "/prometheus.log"; }
  std::string Log() const { return ReadWholeFile(log_path()); }

 private:
  bool WaitUntilReady(int port) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline && !process_->Exited()) {
      httplib::Result ready = httplib::Client("127.0.0.1", port).Get("/-/ready");
      if (ready && ready->status == 200) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::string dir_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = -1;
};

// Polls `query` until it answers `expected`, for at most `timeout`.
testing::AssertionResult EventuallyAnswers(const PrometheusServer& prometheus,
                                           const std::string& query, const std::string& expected,
                                           std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<std::string> last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = QueryValue(prometheus.port(), query);
    if (last == expected) return testing::AssertionSuccess();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return testing::AssertionFailure()
         << query << " did not answer " << expected << " within " << timeout.count()
         << " s (last answer: " << last.value_or("no series") << "). Prometheus's log:\n"
         << prometheus.Log();
}

TEST(PrometheusServerTest, ScrapesTheMetricsServerAndAnswersQueries) {
  std::string binary = FindExecutable("prometheus");
  ASSERT_FALSE(binary.empty()) << "prometheus" << kInstallHint;
  Registry registry;
  FillWithEveryKind(&registry);
  Counter& tokens = (*registry.AddCounter("sae_test_tokens_total",
                                          "Tokens trained, in global tokens.", {"run_id", "rank"}))
                        ->Labels({"run-1", "0"});
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start(&registry, Loopback());
  ASSERT_TRUE(server.ok()) << server.status();

  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  PrometheusServer prometheus(binary, dir.path(), (*server)->port());
  ASSERT_GT(prometheus.port(), 0) << "Prometheus did not become ready. Its log:\n"
                                  << prometheus.Log();

  auto timeout = std::chrono::seconds(60);
  ASSERT_TRUE(EventuallyAnswers(prometheus, "sae_test_tokens_total{run_id=\"run-1\",rank=\"0\"}",
                                "12345", timeout));
  EXPECT_TRUE(EventuallyAnswers(
      prometheus, "sae_test_step_duration_seconds_bucket{run_id=\"run-1\",le=\"0.025\"}", "3",
      timeout));
  EXPECT_TRUE(EventuallyAnswers(prometheus, "sae_test_loss{run_id=\"nan\"}", "NaN", timeout));
  // A later scrape sees the update.
  tokens.Increment(655);
  EXPECT_TRUE(EventuallyAnswers(prometheus, "sae_test_tokens_total{run_id=\"run-1\",rank=\"0\"}",
                                "13000", timeout));
  EXPECT_TRUE(EventuallyAnswers(prometheus, "up{job=\"sae_metrics_test\"}", "1", timeout));
}

// The configuration docs/operations.md gives for a metrics port with --metrics-require-token and
// --metrics-tls-cert: Prometheus sends the token from a file and checks the certificate against
// the CA; the same target scraped without them is down.
TEST(PrometheusServerTest, ScrapesAnEndpointThatRequiresTheTokenOverHttps) {
  std::string binary = FindExecutable("prometheus");
  ASSERT_FALSE(binary.empty()) << "prometheus" << kInstallHint;
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  absl::StatusOr<support::TestCertificates> certificates =
      support::MakeTestCertificates(dir.path());
  ASSERT_TRUE(certificates.ok()) << certificates.status();
  const std::string token = "prometheus-token-8d2e41";
  const std::string token_file = dir.Write("sae-token", token + "\n");
  Registry registry;
  (*registry.AddCounter("sae_test_tokens_total", "Tokens.", {}))->Labels().Increment(4242);
  MetricsServerOptions options = Loopback();
  options.auth_token = token;
  options.tls_cert_file = certificates->server_cert;
  options.tls_key_file = certificates->server_key;
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(&registry, options);
  ASSERT_TRUE(server.ok()) << server.status();

  const int port = (*server)->port();
  const std::string https =
      "    scheme: https\n    tls_config: {ca_file: " + certificates->ca + "}\n";
  const std::string bearer = "    authorization: {credentials_file: " + token_file + "}\n";
  PrometheusServer prometheus(
      binary, dir.path(),
      {ScrapeJob("sae_secured", port, https + bearer), ScrapeJob("sae_without_token", port, https),
       ScrapeJob("sae_plaintext", port, bearer)});
  ASSERT_GT(prometheus.port(), 0) << "Prometheus did not become ready. Its log:\n"
                                  << prometheus.Log();
  auto timeout = std::chrono::seconds(60);
  EXPECT_TRUE(
      EventuallyAnswers(prometheus, "sae_test_tokens_total{job=\"sae_secured\"}", "4242", timeout));
  EXPECT_TRUE(EventuallyAnswers(prometheus, "up{job=\"sae_secured\"}", "1", timeout));
  EXPECT_TRUE(EventuallyAnswers(prometheus, "up{job=\"sae_without_token\"}", "0", timeout));
  EXPECT_TRUE(EventuallyAnswers(prometheus, "up{job=\"sae_plaintext\"}", "0", timeout));
  EXPECT_EQ(QueryValue(prometheus.port(), "sae_test_tokens_total{job=\"sae_without_token\"}"),
            std::nullopt);
}

}  // namespace
}  // namespace sae::metrics
