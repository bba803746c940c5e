#include "core/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/child_process.h"

namespace sae::metrics {
namespace {

using ::testing::HasSubstr;

MetricsServerOptions Loopback(int port) {
  MetricsServerOptions options;
  options.bind_address = "127.0.0.1";
  options.port = port;
  return options;
}

std::unique_ptr<MetricsServer> StartLocal(Registry* registry, int port = 0) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server =
      MetricsServer::Start(registry, Loopback(port));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

// A TCP connection to 127.0.0.1:port, or -1.
int ConnectLocal(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(MetricsServerTest, ServesTheExpositionWithTheTextFormatContentType) {
  Registry registry;
  (*registry.AddCounter("sae_test_tokens_total", "Tokens.", {"run_id"}))
      ->Labels({"run-1"})
      .Increment(12345);
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);

  httplib::Client client("127.0.0.1", server->port());
  httplib::Result response = client.Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(response->body,
            "# HELP sae_test_tokens_total Tokens.\n"
            "# TYPE sae_test_tokens_total counter\n"
            "sae_test_tokens_total{run_id=\"run-1\"} 12345\n");
}

TEST(MetricsServerTest, AnswersHealthzAndUnknownPaths) {
  Registry registry;
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  httplib::Result health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok\n");
  httplib::Result missing = client.Get("/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST(MetricsServerTest, HealthzSaysWhyTheProcessIsUnhealthy) {
  Registry registry;
  std::atomic<bool> healthy{true};
  MetricsServerOptions options;
  options.bind_address = "127.0.0.1";
  options.health = [&healthy] {
    return healthy ? absl::OkStatus() : absl::UnavailableError("the run store does not accept writes");
  };
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(&registry, options);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result ok = client.Get("/healthz");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  healthy = false;
  httplib::Result sick = client.Get("/healthz");
  ASSERT_TRUE(sick);
  EXPECT_EQ(sick->status, 503);
  EXPECT_EQ(sick->body, "unhealthy: the run store does not accept writes\n");
  // /metrics still answers: a sick process is still worth scraping.
  httplib::Result metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
}

TEST(MetricsServerTest, RunsCollectorsOnEveryScrape) {
  Registry registry;
  Gauge& scrapes = (*registry.AddGauge("sae_test_scrapes", "Scrapes seen.", {}))->Labels();
  registry.AddCollector([&scrapes] { scrapes.Increment(); });
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  httplib::Client client("127.0.0.1", server->port());
  ASSERT_TRUE(client.Get("/metrics"));
  httplib::Result second = client.Get("/metrics");
  ASSERT_TRUE(second);
  EXPECT_THAT(second->body, HasSubstr("\nsae_test_scrapes 2\n"));
}

TEST(MetricsServerTest, AnswersConcurrentScrapes) {
  Registry registry;
  Family<Counter>* tokens = *registry.AddCounter("sae_test_tokens_total", "Tokens.", {"rank"});
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> successes{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Counter& mine = tokens->Labels({std::to_string(t)});
      httplib::Client client("127.0.0.1", server->port());
      for (int i = 0; i < 25; ++i) {
        mine.Increment();
        httplib::Result response = client.Get("/metrics");
        if (response && response->status == 200) ++successes;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(successes.load(), 100);
}

TEST(MetricsServerTest, ReportsAPortAlreadyInUse) {
  Registry registry;
  std::unique_ptr<MetricsServer> first = StartLocal(&registry);
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<MetricsServer>> second =
      MetricsServer::Start(&registry, Loopback(first->port()));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("127.0.0.1:" + std::to_string(first->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("--metrics-port"));
}

TEST(MetricsServerTest, ReportsAnAddressThatIsNotLocal) {
  Registry registry;
  MetricsServerOptions options;
  options.bind_address = "192.0.2.1";  // TEST-NET-1: never assigned to this machine.
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(&registry, options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(), HasSubstr("192.0.2.1:0"));
}

TEST(MetricsServerTest, RejectsAPortOutOfRange) {
  Registry registry;
  EXPECT_EQ(MetricsServer::Start(&registry, Loopback(70000)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsServerTest, StopsPromptlyAndFreesItsPort) {
  Registry registry;
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  int port = server->port();
  ASSERT_TRUE(httplib::Client("127.0.0.1", port).Get("/healthz"));
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(SecondsSince(start),
            2.0);  // far below httplib's 5 s timeouts, with room for a loaded machine
  server->Stop();  // Idempotent.
  EXPECT_EQ(ConnectLocal(port), -1);
  server.reset();
  // The port can be bound again at once.
  EXPECT_NE(StartLocal(&registry, port), nullptr);
}

TEST(MetricsServerTest, StopsRightAfterStart) {
  Registry registry;
  for (int i = 0; i < 20; ++i) {
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<MetricsServer> server = StartLocal(&registry);
    ASSERT_NE(server, nullptr);
    server.reset();
    EXPECT_LT(SecondsSince(start),
              2.0);  // far below httplib's 5 s timeouts, with room for a loaded machine
  }
}

TEST(MetricsServerTest, StopsWithinSecondsWhenAClientConnectsAndSendsNothing) {
  Registry registry;
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  int idle = ConnectLocal(server->port());
  ASSERT_GE(idle, 0);
  // A worker has taken the connection up and waits for its request.
  ASSERT_TRUE(support::Eventually([&] { return server->connections_taken() == 1; },
                                  std::chrono::seconds(30)));
  auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(SecondsSince(start), 3.0);
  ::close(idle);
}

TEST(MetricsServerTest, SurvivesAScraperThatHangsUpMidResponse) {
  Registry registry;
  Family<Gauge>* wide = *registry.AddGauge("sae_test_wide", "Many children.", {"run_id"});
  for (int i = 0; i < 20000; ++i) wide->Labels({std::string(80, 'r') + std::to_string(i)});
  std::unique_ptr<MetricsServer> server = StartLocal(&registry);
  ASSERT_NE(server, nullptr);
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ConnectLocal(server->port());
    ASSERT_GE(fd, 0);
    const std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    // The response (2 MB) has begun to arrive, and most of it is still to be written.
    pollfd readable{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&readable, 1, 30000), 1) << "no response within 30 s";
    linger reset{};  // Close with RST, so the server's writes fail.
    reset.l_onoff = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::close(fd);
  }
  httplib::Result health = httplib::Client("127.0.0.1", server->port()).Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST(MetricsServerTest, ServesExtraRoutesBesideAnUnchangedMetricsEndpoint) {
  Registry registry;
  (*registry.AddCounter("sae_test_tokens_total", "Tokens.", {"run_id"}))
      ->Labels({"r"})
      .Increment(3);
  MetricsServerOptions options = Loopback(0);
  options.routes.push_back({"GET", R"(/api/things/([a-z]+))",
                            [](const httplib::Request& request, httplib::Response& response) {
                              response.set_content("thing " + request.matches[1].str(),
                                                   "text/plain");
                            }});
  options.routes.push_back(
      {"POST", "/api/echo", [](const httplib::Request& request, httplib::Response& response) {
         response.set_content(request.body, "text/plain");
       }});
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start(&registry, options);
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  httplib::Result thing = client.Get("/api/things/abc");
  ASSERT_TRUE(thing);
  EXPECT_EQ(thing->status, 200);
  EXPECT_EQ(thing->body, "thing abc");
  httplib::Result echo = client.Post("/api/echo", "hello", "text/plain");
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->body, "hello");
  httplib::Result metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_THAT(metrics->body, HasSubstr("sae_test_tokens_total{run_id=\"r\"} 3"));
  httplib::Result other = client.Get("/api/things/ABC");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

TEST(MetricsServerTest, RefusesARouteThatWouldReplaceTheMetricsEndpoint) {
  Registry registry;
  MetricsServerOptions options = Loopback(0);
  options.routes.push_back({"GET", "/metrics", [](const httplib::Request&, httplib::Response&) {}});
  EXPECT_EQ(MetricsServer::Start(&registry, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.routes = {{"PUT", "/x", [](const httplib::Request&, httplib::Response&) {}}};
  EXPECT_EQ(MetricsServer::Start(&registry, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sae::metrics
