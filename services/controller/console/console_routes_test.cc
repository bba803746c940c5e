// The console's HTTP API on a real in-process controller (gRPC and metrics port on loopback)
// with fake workers that follow the real protocol (tests/support/fake_worker.h).
#include "services/controller/console/console_routes.h"

#include <httplib.h>

#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/common/controller_client.h"
#include "services/controller/console/console_assets.h"
#include "services/controller/controller_server.h"
#include "support/binaries.h"
#include "support/fake_worker.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;
using nlohmann::json;
using support::FakeWorker;
using support::FakeWorkerOptions;
using support::TestRunYaml;

class ConsoleHttpTest : public ::testing::Test {
 protected:
  void TearDown() override {
    workers_.clear();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  }

  void StartController(const std::string& token = "") {
    token_ = token;
    ControllerServerOptions options;
    options.listen = "127.0.0.1:0";
    options.data_dir = folder_.path() + "/db";
    options.metrics_port = 0;
    options.metrics_bind_address = "127.0.0.1";
    options.security.auth_token = token;
    options.controller.lease = absl::Seconds(3);
    options.tick = absl::Milliseconds(20);
    auto server = ControllerServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client::ControllerClientOptions client_options;
    client_options.address = server_->address();
    client_options.security.auth_token = token;
    client_options.timeout = absl::Seconds(10);
    auto client = client::ControllerClient::Connect(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  void AddGang(const std::vector<std::string>& saes = {}) {
    for (v1::WorkerRole role : {v1::WORKER_ROLE_ACTIVATION_SERVER, v1::WORKER_ROLE_TRAINER}) {
      FakeWorkerOptions options;
      options.controller = server_->address();
      options.role = role;
      options.auth_token = token_;
      options.step_time = absl::Milliseconds(5);
      options.saes = saes;
      workers_.push_back(FakeWorker::Start(options));
    }
  }

  std::string Submit(int64_t steps, const std::string& extra_yaml = "") {
    v1::SubmitRunRequest request;
    request.set_config_yaml(TestRunYaml(1, 1, steps) + extra_yaml);
    request.set_name("console");
    auto run = client_->SubmitRun(request);
    EXPECT_TRUE(run.ok()) << run.status();
    return run.ok() ? run->run_id() : "";
  }

  void WaitForState(const std::string& run_id, v1::RunState state) {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (absl::Now() < give_up) {
      auto run = client_->GetRun(run_id);
      if (run.ok() && run->state() == state) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    FAIL() << "run " << run_id << " never reached " << v1::RunState_Name(state);
  }

  httplib::Client Http() const {
    httplib::Client client("127.0.0.1", server_->metrics_port());
    client.set_read_timeout(10, 0);
    return client;
  }

  // GET `path` with the controller's token; the body parsed as JSON.
  json GetJson(const std::string& path, int expected_status = 200) {
    httplib::Headers headers;
    if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
    httplib::Result result = Http().Get(path.c_str(), headers);
    EXPECT_TRUE(result) << path;
    if (!result) return json();
    EXPECT_EQ(result->status, expected_status) << path << ": " << result->body;
    EXPECT_TRUE(absl::StartsWith(result->get_header_value("Content-Type"), "application/json"));
    return json::parse(result->body, nullptr, false);
  }

  TempDir folder_;
  std::string token_;
  std::unique_ptr<ControllerServer> server_;
  std::unique_ptr<client::ControllerClient> client_;
  std::vector<std::unique_ptr<FakeWorker>> workers_;
};

TEST_F(ConsoleHttpTest, ServesRunsHistoryEventsAndWorkersOfARun) {
  StartController();
  AddGang();
  const std::string run_id = Submit(40);
  WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);

  json runs = GetJson("/api/runs");
  ASSERT_EQ(runs["runs"].size(), 1u) << runs.dump();
  EXPECT_EQ(runs["runs"][0]["run_id"], run_id);
  EXPECT_EQ(runs["runs"][0]["state"], "RUN_STATE_SUCCEEDED");
  EXPECT_TRUE(runs["runs"][0]["latest_eval"].is_null()) << "no eval events yet";
  EXPECT_EQ(GetJson("/api/runs?state=SUCCEEDED")["runs"].size(), 1u);
  EXPECT_EQ(GetJson("/api/runs?state=RUNNING,PENDING")["runs"].size(), 0u);

  json history = GetJson("/api/runs/" + run_id + "/history");
  const json& columns = history["columns"];
  ASSERT_EQ(history["points"], 40) << history.dump();
  EXPECT_EQ(columns["step"].front(), 1);
  EXPECT_EQ(columns["step"].back(), 40);
  EXPECT_EQ(columns["tokens"].back(), 40 * 64);
  EXPECT_DOUBLE_EQ(columns["l0"].back().get<double>(), 50.0)
      << "the fake trainer's L0 is 10 + step";
  EXPECT_DOUBLE_EQ(columns["overall_loss"].front().get<double>(), 1.0);
  EXPECT_TRUE(columns["mean_log10_feature_sparsity"].front().is_null())
      << "an optional metric a report did not carry is null, a gap in the chart";
  EXPECT_EQ(columns["time_unix_ms"].size(), 40u);

  json run = GetJson("/api/runs/" + run_id);
  EXPECT_EQ(run["run"]["run_id"], run_id);
  EXPECT_TRUE(absl::StrContains(run["run"]["config_yaml"].get<std::string>(), "d_in: 64"));
  ASSERT_FALSE(run["checkpoints"].empty());
  EXPECT_TRUE(run["checkpoints"].back()["final"].get<bool>());
  EXPECT_FALSE(run["checkpoints"].back().contains("chunks")) << "no chunk digests";

  json events = GetJson("/api/runs/" + run_id + "/events");
  ASSERT_FALSE(events["events"].empty());
  const uint64_t last = events["last_sequence"].get<uint64_t>();
  EXPECT_EQ(events["events"].back()["state"], "RUN_STATE_SUCCEEDED");
  const std::string after = absl::StrCat("/api/runs/", run_id, "/events?after=", last);
  EXPECT_TRUE(GetJson(after)["events"].empty());

  json workers = GetJson("/api/workers");
  ASSERT_EQ(workers["workers"].size(), 2u);
  EXPECT_GE(workers["workers"][0]["lease_age_ms"].get<int64_t>(), 0);

  GetJson("/api/runs/nope-12345", 404);
  GetJson("/api/runs/nope-12345/history", 404);
}

TEST_F(ConsoleHttpTest, ServesEachSaesHistoryOfARunOfManySaes) {
  StartController();
  const std::vector<std::string> saes = {"blocks.0.hook_resid_pre/l1=0.001",
                                         "blocks.0.hook_resid_pre/l1=0.002"};
  AddGang(saes);
  const std::string run_id = Submit(20, "sweep:\n  l1_coefficient: [0.001, 0.002]\n");
  WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);

  json top = GetJson("/api/runs/" + run_id + "/history");
  EXPECT_EQ(top["saes"], json(saes)) << top.dump();
  EXPECT_EQ(top["sae"], "");
  ASSERT_EQ(top["points"], 20) << top.dump();
  for (size_t i = 0; i < saes.size(); ++i) {
    // The name holds '/' and '=': escaped in the query as the console does.
    httplib::Params params{{"sae", saes[i]}};
    const std::string path = httplib::append_query_params("/api/runs/" + run_id + "/history",
                                                          params);
    json history = GetJson(path);
    EXPECT_EQ(history["sae"], saes[i]);
    const json& columns = history["columns"];
    ASSERT_EQ(columns["l0"].size(), 20u) << history.dump();
    for (size_t p = 0; p < 20; ++p) {
      const int64_t step = columns["step"][p].get<int64_t>();
      EXPECT_EQ(step, static_cast<int64_t>(p) + 1);
      EXPECT_DOUBLE_EQ(columns["l0"][p].get<double>(), 10.0 + step + 100.0 * (i + 1))
          << "the fake trainer's L0 of SAE " << i;
      EXPECT_EQ(columns["tokens"][p].get<int64_t>(), step * 64);
    }
  }
  json missing = GetJson(
      httplib::append_query_params("/api/runs/" + run_id + "/history", {{"sae", "nope"}}), 404);
  EXPECT_TRUE(absl::StrContains(missing.dump(), "l1=0.002")) << missing.dump();
}

TEST_F(ConsoleHttpTest, ServesThePagesAndAssetsBesideAnUnchangedMetricsEndpoint) {
  StartController();
  httplib::Client http = Http();
  httplib::Result index = http.Get("/");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200);
  EXPECT_TRUE(absl::StrContains(index->body, "/assets/console.js"));
  httplib::Result script = http.Get("/assets/console.js");
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->body,
            *ReadFile(support::SourceDir() + "/services/controller/console/assets/console.js"))
      << "the embedded asset is the file, byte for byte";
  httplib::Result uplot = http.Get("/assets/uPlot.iife.min.js");
  ASSERT_TRUE(uplot);
  EXPECT_EQ(uplot->status, ConsoleHasUplot() ? 200 : 404);
  EXPECT_EQ(http.Get("/assets/nothing.js")->status, 404);
  httplib::Result metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_TRUE(absl::StrContains(metrics->body, "sae_controller_runs{state=\"pending\"}"));
  EXPECT_EQ(http.Get("/healthz")->body, "ok\n");
}

TEST_F(ConsoleHttpTest, HistorySurvivesAControllerRestart) {
  StartController();
  AddGang();
  const std::string run_id = Submit(30);
  WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);
  const json before = GetJson("/api/runs/" + run_id + "/history");
  workers_.clear();
  server_->Shutdown(absl::Seconds(1));
  server_.reset();
  StartController();
  const json after = GetJson("/api/runs/" + run_id + "/history");
  EXPECT_EQ(after["points"], 30);
  EXPECT_EQ(after["columns"], before["columns"]);
}

TEST_F(ConsoleHttpTest, RequiresTheTokenWhenTheControllerHasOne) {
  StartController("s3cret");
  httplib::Client http = Http();
  httplib::Result api = http.Get("/api/runs");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 401);
  EXPECT_FALSE(absl::StrContains(api->body, "runs\":"));
  httplib::Result page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 401);
  EXPECT_TRUE(absl::StrContains(page->body, "name=\"token\"")) << "the login form";
  EXPECT_EQ(http.Get("/api/runs", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(http.Get("/api/runs", {{"Cookie", "sae_console_token=wrong"}})->status, 401);
  EXPECT_EQ(http.Get("/api/runs", {{"Authorization", "Bearer s3cret"}})->status, 200);
  EXPECT_EQ(http.Get("/api/runs", {{"Cookie", "a=b; sae_console_token=s3cret"}})->status, 200);
  EXPECT_EQ(http.Get("/api/workers")->status, 401);
  EXPECT_EQ(http.Get("/api/runs/x/checkpoints/1/download")->status, 401);

  // Logging in: a wrong token goes back to the form, the right one sets the cookie.
  httplib::Result wrong = http.Post("/login", "token=nope", "application/x-www-form-urlencoded");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 303);
  EXPECT_EQ(wrong->get_header_value("Location"), "/login?wrong=1");
  EXPECT_FALSE(wrong->has_header("Set-Cookie"));
  httplib::Result right = http.Post("/login", "token=s3cret", "application/x-www-form-urlencoded");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 303);
  const std::string cookie = right->get_header_value("Set-Cookie");
  EXPECT_TRUE(absl::StartsWith(cookie, "sae_console_token=s3cret;")) << cookie;
  EXPECT_TRUE(absl::StrContains(cookie, "HttpOnly"));
  httplib::Result link = http.Get("/?token=s3cret");
  ASSERT_TRUE(link);
  EXPECT_EQ(link->status, 303);
  EXPECT_TRUE(absl::StartsWith(link->get_header_value("Set-Cookie"), "sae_console_token=s3cret;"));
  EXPECT_EQ(http.Get("/?token=nope")->status, 401);

  // Prometheus and health checks stay open, as before.
  EXPECT_EQ(http.Get("/metrics")->status, 200);
  EXPECT_EQ(http.Get("/healthz")->status, 200);
  EXPECT_EQ(http.Get("/assets/console.css")->status, 200) << "assets hold no run data";
}

TEST_F(ConsoleHttpTest, DownloadsTheSaeLensFolderOfACheckpointAsATar) {
  StartController("t0ken");
  AddGang();
  const std::string run_id = Submit(12);
  WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);
  auto final_run = client_->GetRun(run_id);
  ASSERT_TRUE(final_run.ok());
  const int64_t step = final_run->final_checkpoint_step();
  httplib::Result tar = Http().Get(absl::StrCat("/api/runs/", run_id, "/checkpoints/", step,
                                                "/download")
                                       .c_str(),
                                   {{"Authorization", "Bearer t0ken"}});
  ASSERT_TRUE(tar);
  ASSERT_EQ(tar->status, 200);
  EXPECT_EQ(tar->get_header_value("Content-Type"), "application/x-tar");
  const std::string folder = absl::StrCat(run_id, "-step-", step);
  EXPECT_TRUE(absl::StrContains(tar->get_header_value("Content-Disposition"), folder + ".tar"));
  const std::string out = folder_.path() + "/download";
  ASSERT_TRUE(WriteFileAtomically(out + ".tar", tar->body).ok());
  const std::string command = absl::StrCat("mkdir -p ", out, " && tar -xf ", out, ".tar -C ", out);
  ASSERT_EQ(std::system(command.c_str()), 0);
  auto cfg = ReadFile(absl::StrCat(out, "/", folder, "/cfg.json"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_TRUE(absl::StrContains(*cfg, absl::StrCat("\"training_tokens\": ", step * 64))) << *cfg;
  auto weights = ReadFile(absl::StrCat(out, "/", folder, "/sae_weights.safetensors"));
  ASSERT_TRUE(weights.ok());
  EXPECT_GT(weights->size(), 64u * 128u * 4u);

  EXPECT_EQ(Http().Get(absl::StrCat("/api/runs/", run_id, "/checkpoints/999999/download").c_str(),
                       {{"Authorization", "Bearer t0ken"}})
                ->status,
            404);
}

TEST_F(ConsoleHttpTest, ServesTheRunsStoredFeatureDashboardsBehindTheToken) {
  StartController("t0ken");
  AddGang();
  const std::string run_id = Submit(12);
  WaitForState(run_id, v1::RUN_STATE_SUCCEEDED);
  const httplib::Headers auth = {{"Authorization", "Bearer t0ken"}};
  const std::string base = absl::StrCat("/api/runs/", run_id, "/features/");
  EXPECT_EQ(Http().Get((base + "index.html").c_str(), auth)->status, 404);
  EXPECT_FALSE(GetJson("/api/runs/" + run_id)["run"].contains("features_step"))
      << "the console tells a run without dashboards by the field's absence";

  // What `saectl features RUN` uploads: an output folder, here with a file over several chunks.
  TempDir out;
  const std::string chunk = "SAE_DASH.chunk(0, [" + std::string(2500000, '7') + "]);";
  out.Write("index.html", "<html>features</html>");
  out.Write("data/chunk-00000.js", chunk);
  out.Write("features.jsonl", "{\"feature\": 0}\n");
  v1::UploadHeader header;
  header.set_run_id(run_id);
  header.set_step(12);
  header.set_tokens(768);
  header.set_features(true);
  auto stored = client_->UploadCheckpoint(header, out.path());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_GE(stored->chunk_count(), 3);
  header.set_run_id("nosuch-run");
  EXPECT_TRUE(absl::IsNotFound(client_->UploadCheckpoint(header, out.path()).status()));

  json run = GetJson("/api/runs/" + run_id);
  EXPECT_EQ(run["run"]["features_step"], "12") << run.dump();
  httplib::Result script = Http().Get((base + "data/chunk-00000.js").c_str(), auth);
  ASSERT_TRUE(script);
  EXPECT_EQ(script->status, 200);
  EXPECT_EQ(script->body, chunk) << "the file whole, across its chunks";
  EXPECT_TRUE(absl::StartsWith(script->get_header_value("Content-Type"), "text/javascript"));
  httplib::Result page = Http().Get((base + "index.html").c_str(), auth);
  EXPECT_EQ(page->body, "<html>features</html>");
  EXPECT_TRUE(absl::StartsWith(page->get_header_value("Content-Type"), "text/html"));
  EXPECT_EQ(Http().Get((base + "features.jsonl").c_str(), auth)->body, "{\"feature\": 0}\n");
  EXPECT_EQ(Http().Get((base + "data/missing.js").c_str(), auth)->status, 404);
  EXPECT_EQ(Http().Get((base + "data/../index.html").c_str(), auth)->status, 400);
  EXPECT_EQ(Http().Get((base + "index.html").c_str())->status, 401);

  // A new upload replaces them, and DownloadCheckpoint with `features` brings them back.
  out.Write("index.html", "<html>again</html>");
  header.set_run_id(run_id);
  ASSERT_TRUE(client_->UploadCheckpoint(header, out.path()).ok());
  EXPECT_EQ(Http().Get((base + "index.html").c_str(), auth)->body, "<html>again</html>");
  const std::string copy = folder_.path() + "/features-copy";
  auto downloaded = client_->DownloadFeatures(run_id, copy);
  ASSERT_TRUE(downloaded.ok()) << downloaded.status();
  EXPECT_EQ(*ReadFile(copy + "/data/chunk-00000.js"), chunk);
  EXPECT_EQ(*ReadFile(copy + "/index.html"), "<html>again</html>");
}

TEST_F(ConsoleHttpTest, StopsARunOnlyFromTheConsolePage) {
  StartController();
  AddGang();
  const std::string run_id = Submit(100000);
  WaitForState(run_id, v1::RUN_STATE_RUNNING);
  const std::string path = absl::StrCat("/api/runs/", run_id, "/stop");
  httplib::Result forged = Http().Post(path.c_str(), "", "text/plain");
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->status, 403) << "a form of another site cannot send the header";
  httplib::Result stop = Http().Post(path.c_str(), {{"X-Sae-Console", "1"}}, "", "text/plain");
  ASSERT_TRUE(stop);
  EXPECT_EQ(stop->status, 200) << stop->body;
  WaitForState(run_id, v1::RUN_STATE_STOPPED);
}

}  // namespace
}  // namespace sae::controller
