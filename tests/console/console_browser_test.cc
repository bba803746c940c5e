// The controller's web console in a real browser: Debian's chromium, headless, against a local
// cluster that `saectl cluster up` starts with a bearer token (the real sae-controller,
// sae-activation-server and sae-trainer on loopback), training a gpt2-tiny SAE with random
// weights.
//
// chromium loads each page with --dump-dom after a virtual-time budget, long enough for the
// page's first API calls and its charts (network waits pause virtual time). The page marks what
// it drew in the DOM: body[data-page], body[data-ready] once its data arrived, each chart's
// data-points (the non-null values it plotted), and #js-errors' data-count (errors caught by the
// page's window.onerror). The browser's own log (--enable-logging=stderr) must not hold an
// "Uncaught" error either. Screenshots go to <build>/tests/console-artifacts/.
//
// Every chromium and saectl call runs under `timeout -s KILL`; a reaper child kills the cluster
// if the test dies.
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/command.h"
#include "support/local_cluster.h"
#include "support/temp_dir.h"

namespace sae {
namespace {

namespace fs = std::filesystem;
using support::TempDir;

constexpr char kToken[] = "console-test-token-7f3a";

using Result = support::CommandResult;

// What chromium showed of a page.
struct Page {
  std::string dom;
  std::string log;  // chromium's stderr
  int code = -1;

  // The value of attribute `name` on the element whose attribute `key` is `value`.
  std::string Attribute(const std::string& key, const std::string& value,
                        const std::string& name) const {
    std::smatch match;
    std::regex element("<[^>]*" + key + "=\"" + value + "\"[^>]*>");
    if (!std::regex_search(dom, match, element)) return "";
    std::smatch attribute;
    const std::string tag = match.str(0);
    if (!std::regex_search(tag, attribute, std::regex(" " + name + "=\"([^\"]*)\""))) return "";
    return attribute.str(1);
  }
  std::string BodyAttribute(const std::string& name) const {
    std::smatch match;
    if (!std::regex_search(dom, match, std::regex("<body[^>]* " + name + "=\"([^\"]*)\""))) {
      return "";
    }
    return match.str(1);
  }
  int ChartPoints(const std::string& chart) const {
    int points = -1;
    return absl::SimpleAtoi(Attribute("data-chart", chart, "data-points"), &points) ? points : -1;
  }
};

class ConsoleBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("SAE_AUTH_TOKEN", kToken, 1);
    ::setenv("SAECTL_SERVER", "127.0.0.1:1", 1);
    artifacts_ = fs::path(support::BuildDir()) / "tests" / "console-artifacts";
    fs::create_directories(artifacts_);
  }

  void TearDown() override {
    if (!cluster_up_) return;
    Result down = cluster_.Down(/*down_timeout_seconds=*/10, /*timeout_seconds=*/60, nullptr);
    EXPECT_EQ(down.code, 0) << down.err;
    if (HasFailure()) cluster_.DumpLogs(4000);
  }

  // Runs `command` (split by the shell) under `timeout -s KILL`.
  Result Shell(const std::string& command, int timeout_seconds) {
    return runner_.Shell(command, timeout_seconds);
  }

  Result Saectl(const std::string& args, int timeout_seconds = 60) {
    return runner_.Saectl(args, timeout_seconds);
  }

  std::string DataDir() const { return cluster_.data_dir(); }

  // `saectl cluster up` with one activation server and one trainer; returns the console URL it
  // printed, e.g. http://127.0.0.1:41234/.
  std::string StartCluster() {
    Result up = cluster_.Up(support::LocalClusterOptions());
    cluster_up_ = true;
    EXPECT_EQ(up.code, 0) << up.out << up.err;
    std::smatch match;
    const std::regex url("console: (http://127\\.0\\.0\\.1:[0-9]+/)");
    if (!std::regex_search(up.out, match, url)) {
      ADD_FAILURE() << "cluster up printed no console URL:\n" << up.out;
      return "";
    }
    EXPECT_FALSE(support::LocalCluster::ServerAddress(up).empty()) << up.out;
    return match.str(1);
  }

  // The run.yaml of a gpt2-tiny run of `steps` steps of 256 tokens, reporting every 2 steps.
  std::string WriteRunYaml(int64_t steps, int checkpoints = 2,
                           const std::map<std::string, std::string>& extra = {}) {
    const std::string dir = folder_.path();
    if (!fs::exists(dir + "/model")) {
      absl::Status files = support::WriteGpt2TinyRunFiles(runner_, dir, 4000, 7);
      EXPECT_TRUE(files.ok()) << files;
    }
    std::map<std::string, std::string> keys = {{"wandb_log_frequency", "2"},
                                               {"feature_sampling_window", "20"},
                                               {"n_checkpoints", absl::StrCat(checkpoints)},
                                               {"max_restarts", "2"},
                                               {"activation_servers", "1"},
                                               {"trainers", "1"}};
    for (const auto& [key, value] : extra) keys[key] = value;
    return folder_.Write("run.yaml", support::Gpt2TinyRunYaml(dir, steps, keys));
  }

  // The history columns of `run_id` (of SAE `sae` when given) from the console's API.
  nlohmann::json HistoryColumns(const std::string& console, const std::string& run_id,
                                const std::string& sae = "") {
    std::smatch port;
    EXPECT_TRUE(std::regex_search(console, port, std::regex(":([0-9]+)/")));
    httplib::Client http("127.0.0.1", std::stoi(port.str(1)));
    httplib::Params params;
    if (!sae.empty()) params.emplace("sae", sae);
    httplib::Result history = http.Get(
        httplib::append_query_params(absl::StrCat("/api/runs/", run_id, "/history"), params)
            .c_str(),
        {{"Authorization", std::string("Bearer ") + kToken}});
    EXPECT_TRUE(history && history->status == 200) << (history ? history->body : "no answer");
    if (!history || history->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(history->body)["columns"];
  }

  // Loads `url` in headless chromium and returns the DOM after `budget_ms` of virtual time;
  // with `screenshot`, also saves a 1400x1000 PNG of it under the artifacts folder.
  Page Load(const std::string& url, const std::string& screenshot = "", int budget_ms = 6000) {
    const std::string profile = absl::StrCat(folder_.path(), "/chromium-", runner_.calls());
    const std::string flags =
        absl::StrCat("chromium --headless --no-sandbox --disable-gpu --no-first-run ",
                     "--disable-dev-shm-usage --user-data-dir=", profile,
                     " --enable-logging=stderr --v=0 --window-size=1400,1000",
                     " --virtual-time-budget=", budget_ms, " ");
    Result dump = Shell(absl::StrCat(flags, "--dump-dom '", url, "'"), 90);
    Page page;
    page.code = dump.code;
    page.dom = dump.out;
    page.log = dump.err;
    EXPECT_EQ(dump.code, 0) << url << "\n" << dump.err;
    if (!screenshot.empty()) {
      const std::string png = (artifacts_ / screenshot).string();
      Result shot = Shell(absl::StrCat(flags, "--screenshot=", png, " '", url, "'"), 90);
      EXPECT_EQ(shot.code, 0) << shot.err;
      EXPECT_TRUE(fs::exists(png) && fs::file_size(png) > 10000) << png;
    }
    return page;
  }

  // Polls the log of the cluster's process `name` until it holds `text`.
  void WaitForProcessLog(const std::string& name, const std::string& text, int seconds = 120) {
    cluster_.WaitForProcessLog(name, text, seconds);
  }

  // SIGKILL to the cluster's process `name`; returns once it is gone.
  void KillProcess(const std::string& name) { cluster_.KillProcess(name); }

  // The cluster's supervisor started process `name` again, and the controller answers.
  void WaitForSupervisorRestart(const std::string& name) {
    cluster_.WaitForRestart(name, 1, 60);
    EXPECT_TRUE(support::Eventually([&] { return Saectl("get runs").code == 0; },
                                    std::chrono::seconds(60)))
        << "the controller does not answer after " << name << "'s restart";
  }

  // No JavaScript error on the page: none caught by the page, none in the browser's log.
  static void ExpectNoJavaScriptErrors(const Page& page, const std::string& what) {
    EXPECT_EQ(page.Attribute("id", "js-errors", "data-count"), "0") << what << "\n" << page.dom;
    EXPECT_FALSE(absl::StrContains(page.log, "Uncaught")) << what << "\n" << page.log;
  }

  TempDir folder_;
  support::CommandRunner runner_{folder_.path()};
  support::LocalCluster cluster_{folder_.path() + "/cluster", runner_};
  fs::path artifacts_;
  bool cluster_up_ = false;
};

TEST_F(ConsoleBrowserTest, ShowsARunItsChartsAndWorkersBehindTheTokenAcrossAControllerRestart) {
  const std::string console = StartCluster();
  ASSERT_FALSE(console.empty());
  Result status = Saectl("cluster status --data-dir " + DataDir());
  EXPECT_TRUE(absl::StrContains(status.out, "console: " + console)) << status.out;

  // Without the token: the login form, and no run data from the API.
  Page login = Load(console);
  EXPECT_EQ(login.BodyAttribute("data-page"), "login") << login.dom;
  EXPECT_TRUE(absl::StrContains(login.dom, "name=\"token\""));
  std::smatch port;
  ASSERT_TRUE(std::regex_search(console, port, std::regex(":([0-9]+)/")));
  httplib::Client http("127.0.0.1", std::stoi(port.str(1)));
  httplib::Result api = http.Get("/api/runs");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 401);

  Result submitted = Saectl("submit " + WriteRunYaml(300) + " --name console");
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  const std::string login_url = absl::StrCat(console, "?token=", kToken);

  // The runs page lists the run while it trains (or already ended, on a fast machine).
  Page runs = Load(login_url + "#/runs", "runs.png");
  EXPECT_EQ(runs.BodyAttribute("data-page"), "runs") << runs.dom;
  EXPECT_EQ(runs.BodyAttribute("data-ready"), "1") << runs.dom;
  EXPECT_TRUE(absl::StrContains(runs.dom, "data-run=\"" + run_id + "\"")) << runs.dom;
  ExpectNoJavaScriptErrors(runs, "runs page");

  Result waited = Saectl(absl::StrCat("wait ", run_id, " --timeout 300"), 330);
  ASSERT_EQ(waited.code, 0) << waited.out << waited.err;

  // The run page draws every training chart from the run's progress history.
  Page run = Load(absl::StrCat(login_url, "#/run/", run_id), "run.png", 8000);
  EXPECT_EQ(run.BodyAttribute("data-page"), "run") << run.dom;
  EXPECT_EQ(run.BodyAttribute("data-ready"), "1") << run.dom;
  ExpectNoJavaScriptErrors(run, "run page");
  const int l0_points = run.ChartPoints("l0");
  // Every l0 value of the run's stored history is drawn. (300 steps reported every 2 steps; how
  // many reach the controller depends on load, as the trainer's sender replaces a report not
  // sent yet, so the count is taken from the controller's history API rather than fixed.)
  httplib::Result history = http.Get(absl::StrCat("/api/runs/", run_id, "/history").c_str(),
                                     {{"Authorization", std::string("Bearer ") + kToken}});
  ASSERT_TRUE(history);
  ASSERT_EQ(history->status, 200) << history->body;
  nlohmann::json columns = nlohmann::json::parse(history->body)["columns"];
  int stored_l0 = 0;
  for (const nlohmann::json& value : columns["l0"]) stored_l0 += value.is_number() ? 1 : 0;
  EXPECT_GE(stored_l0, 2) << history->body;
  EXPECT_EQ(l0_points, stored_l0) << run.dom;
  for (const char* chart : {"losses", "explained_variance", "dead_features", "learning_rate",
                            "tokens_per_second", "feature_density"}) {
    EXPECT_GT(run.ChartPoints(chart), 0) << chart << "\n" << run.dom;
  }
  EXPECT_TRUE(absl::StrContains(run.dom, "<canvas")) << "uPlot drew";
  // n_checkpoints 2: the checkpoint at step 150 and the final SAE at 300, marked on the charts.
  EXPECT_EQ(run.Attribute("data-chart", "l0", "data-markers"), "2") << run.dom;
  EXPECT_TRUE(absl::StrContains(run.dom, "download .tar")) << "the checkpoints' links";
  EXPECT_TRUE(absl::StrContains(run.dom, "SUCCEEDED"));
  // Evaluations ran on the activation server (at step 200 and after the last step): the latest
  // one's scores are listed.
  EXPECT_TRUE(absl::StrContains(run.dom, "id=\"eval-table\"")) << run.dom;
  EXPECT_TRUE(absl::StrContains(run.dom, "eval.ce_loss_score")) << run.dom;
  // Feature-sampling windows of 20 steps ended: the last one's density histogram is drawn.
  EXPECT_TRUE(absl::StrContains(run.dom, "id=\"density-bars\"")) << run.dom;
  EXPECT_TRUE(absl::StrContains(run.dom, "class=\"density-bar\" data-count=")) << run.dom;

  // The charts come back whole after the controller is killed and started again.
  KillProcess("controller");
  WaitForSupervisorRestart("controller");
  Page again = Load(absl::StrCat(login_url, "#/run/", run_id), "run-after-restart.png", 8000);
  EXPECT_EQ(again.BodyAttribute("data-ready"), "1") << again.dom;
  EXPECT_EQ(again.ChartPoints("l0"), l0_points) << "the same history after the restart";
  ExpectNoJavaScriptErrors(again, "run page after a controller restart");

  // The restarted controller knows a worker once that worker registers again (at its next
  // heartbeat, which the old controller's death made fail): the page is loaded after both did.
  std::string listed;
  EXPECT_TRUE(support::Eventually(
      [&] {
        httplib::Result answer =
            http.Get("/api/workers", {{"Authorization", std::string("Bearer ") + kToken}});
        if (!answer || answer->status != 200) return false;
        listed = answer->body;
        nlohmann::json body = nlohmann::json::parse(listed, nullptr, false);
        return body.is_object() && body.contains("workers") && body["workers"].size() >= 2;
      },
      std::chrono::seconds(60)))
      << "the server and the trainer did not register again: " << listed;
  Page workers = Load(login_url + "#/workers", "workers.png");
  EXPECT_EQ(workers.BodyAttribute("data-page"), "workers") << workers.dom;
  EXPECT_EQ(workers.BodyAttribute("data-ready"), "1") << workers.dom;
  EXPECT_TRUE(absl::StrContains(workers.dom, "trainer")) << workers.dom;
  EXPECT_TRUE(absl::StrContains(workers.dom, "activation server")) << workers.dom;
  ExpectNoJavaScriptErrors(workers, "workers page");
}

TEST_F(ConsoleBrowserTest, MarksARestartOnTheChartsWhoseHistoryFollowsTheRollback) {
  const std::string console = StartCluster();
  ASSERT_FALSE(console.empty());
  Result submitted = Saectl("submit " + WriteRunYaml(600, 3) + " --name restart");
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  // The only trainer goes after its checkpoint at step 200, so the restart rolls back.
  WaitForProcessLog("trainer-0", "checkpoint at step 200:");
  WaitForProcessLog("trainer-0", "step 260/600 ");
  KillProcess("trainer-0");
  WaitForSupervisorRestart("trainer-0");
  Result waited = Saectl(absl::StrCat("wait ", run_id, " --timeout 300"), 330);
  ASSERT_EQ(waited.code, 0) << waited.out << waited.err;

  Page run = Load(absl::StrCat(console, "?token=", kToken, "#/run/", run_id), "run-restarted.png",
                  8000);
  EXPECT_EQ(run.BodyAttribute("data-ready"), "1") << run.dom;
  ExpectNoJavaScriptErrors(run, "run page of a restarted run");
  EXPECT_EQ(run.Attribute("data-chart", "l0", "data-restarts"), "1") << run.dom;
  int markers = 0;
  ASSERT_TRUE(absl::SimpleAtoi(run.Attribute("data-chart", "l0", "data-markers"), &markers));
  EXPECT_GE(markers, 4) << "checkpoints at 200, 400 and the final SAE, and the restart";
  // Reports every 2 steps: the points the restart rolled back (after step 200) were replaced,
  // not added to.
  EXPECT_LE(run.ChartPoints("l0"), 300) << run.dom;
  EXPECT_GE(run.ChartPoints("l0"), 30) << run.dom;
  EXPECT_TRUE(absl::StrContains(run.dom, ">RESTART<")) << "the restart in the events list";
}

// A run of two SAEs (an l1 sweep): the run page offers both, and the charts and figures are
// those of the SAE in the page's address.
TEST_F(ConsoleBrowserTest, ChartsTheSaeChosenInARunOfManySaes) {
  const std::string console = StartCluster();
  ASSERT_FALSE(console.empty());
  const std::vector<std::string> saes = {"blocks.1.hook_resid_pre/l1=0.0001",
                                         "blocks.1.hook_resid_pre/l1=0.03"};
  Result submitted = Saectl("submit " +
                            WriteRunYaml(80, 1,
                                         {{"hook_point", "blocks.1.hook_resid_pre"},
                                          {"sweep", "\n  l1_coefficient: [0.0001, 0.03]"}}) +
                            " --name sweep");
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  Result waited = Saectl(absl::StrCat("wait ", run_id, " --timeout 300"), 330);
  ASSERT_EQ(waited.code, 0) << waited.out << waited.err;

  const std::string login_url = absl::StrCat(console, "?token=", kToken);
  std::vector<double> last_l0;
  for (const std::string& sae : saes) {
    nlohmann::json columns = HistoryColumns(console, run_id, sae);
    double last = -1;
    int stored = 0;
    for (const nlohmann::json& value : columns["l0"]) {
      if (value.is_number()) last = value.get<double>(), ++stored;
    }
    ASSERT_GE(stored, 2) << columns.dump();
    last_l0.push_back(last);
    httplib::Params params{{"sae", sae}};
    Page page = Load(absl::StrCat(login_url, "#/run/", run_id,
                                  httplib::append_query_params("", params)),
                     sae == saes[1] ? "run-sae.png" : "", 8000);
    EXPECT_EQ(page.BodyAttribute("data-ready"), "1") << page.dom;
    EXPECT_EQ(page.BodyAttribute("data-sae"), sae) << page.dom;
    EXPECT_EQ(page.ChartPoints("l0"), stored) << page.dom;
    double drawn = -2;
    EXPECT_TRUE(absl::SimpleAtod(page.Attribute("data-chart", "l0", "data-last"), &drawn))
        << page.dom;
    EXPECT_DOUBLE_EQ(drawn, last) << sae;
    for (const std::string& name : saes) {
      EXPECT_TRUE(absl::StrContains(page.dom, "<option value=\"" + name + "\"")) << page.dom;
    }
    ExpectNoJavaScriptErrors(page, "run page of " + sae);
  }
  // The two SAEs train with l1 coefficients 300x apart: their L0s differ, so the page could
  // not pass by showing the same SAE twice.
  EXPECT_GT(last_l0[0], last_l0[1]) << "more L1 penalty, fewer active latents";
}

// `saectl features RUN` computes the dashboards of a finished run's SAE with the run's model and
// dataset and stores them with the run; `saectl export` brings them along, and the console's
// features page draws them (index and one feature) from what the controller serves.
TEST_F(ConsoleBrowserTest, ShowsTheFeatureDashboardsThatSaectlFeaturesStoredWithARun) {
  const std::string console = StartCluster();
  ASSERT_FALSE(console.empty());
  Result submitted = Saectl("submit " + WriteRunYaml(120, 1) + " --name features");
  ASSERT_EQ(submitted.code, 0) << submitted.out << submitted.err;
  const std::string run_id(
      absl::StripAsciiWhitespace(submitted.out.substr(0, submitted.out.find('\n'))));
  Result waited = Saectl(absl::StrCat("wait ", run_id, " --timeout 300"), 330);
  ASSERT_EQ(waited.code, 0) << waited.out << waited.err;

  Result unknown = Saectl("features nosuch-run00 --tokens 1024");
  EXPECT_EQ(unknown.code, 2) << unknown.out << unknown.err;
  EXPECT_TRUE(absl::StrContains(unknown.err, "neither a folder nor a run")) << unknown.err;
  Result features =
      Saectl(absl::StrCat("features ", run_id, " --tokens 4096 --top 5 --threads 1"), 300);
  ASSERT_EQ(features.code, 0) << features.out << features.err;
  EXPECT_TRUE(absl::StrContains(features.out, "stored the feature dashboards of run " + run_id))
      << features.out;
  EXPECT_TRUE(absl::StrContains(features.out, "256 features of SAE run " + run_id)) << features.out;

  // The export holds the SAE and, beside it, the dashboards of that SAE.
  const std::string exported = folder_.path() + "/export";
  Result exporting = Saectl(absl::StrCat("export ", run_id, " --out ", exported));
  ASSERT_EQ(exporting.code, 0) << exporting.out << exporting.err;
  for (const char* file : {"cfg.json", "features/features.jsonl", "features/summary.json",
                           "features/index.html", "features/data/index.js",
                           "features/data/chunk-00000.js", "features/assets/dashboard.js"}) {
    EXPECT_TRUE(fs::exists(exported + "/" + file)) << file << "\n" << exporting.out;
  }
  // A feature that fired, to open its page.
  std::string live;
  const std::string jsonl = ReadFile(exported + "/features/features.jsonl").value_or("");
  for (absl::string_view line : absl::StrSplit(jsonl, '\n')) {
    nlohmann::json record = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (!record.is_discarded() && record.value("count", 0) > 0) {
      live = std::to_string(record["feature"].get<int>());
      break;
    }
  }
  ASSERT_FALSE(live.empty()) << "no feature fired";

  const std::string login_url = absl::StrCat(console, "?token=", kToken);
  Page run = Load(absl::StrCat(login_url, "#/run/", run_id), "", 8000);
  EXPECT_TRUE(absl::StrContains(run.dom, "id=\"features-link\"")) << run.dom;
  ExpectNoJavaScriptErrors(run, "run page with features");

  Page index = Load(absl::StrCat(login_url, "#/features/", run_id, "?sort=frequency"),
                    "features-index.png", 8000);
  EXPECT_EQ(index.BodyAttribute("data-page"), "features") << index.dom;
  EXPECT_EQ(index.BodyAttribute("data-ready"), "1") << index.dom;
  EXPECT_EQ(index.BodyAttribute("data-total"), "256") << index.dom;
  EXPECT_EQ(index.BodyAttribute("data-rows"), "100") << index.dom;
  EXPECT_TRUE(absl::StrContains(index.dom, "href=\"#/features/" + run_id + "/")) << index.dom;
  ExpectNoJavaScriptErrors(index, "features index");

  Page feature = Load(absl::StrCat(login_url, "#/features/", run_id, "/", live),
                      "features-feature.png", 8000);
  EXPECT_EQ(feature.BodyAttribute("data-ready"), "1") << feature.dom;
  EXPECT_EQ(feature.BodyAttribute("data-feature"), live) << feature.dom;
  EXPECT_TRUE(absl::StrContains(feature.dom, "class=\"tok active peak\"")) << feature.dom;
  EXPECT_TRUE(std::regex_search(feature.dom, std::regex("title=\"[^\"]*activation [0-9]")));
  EXPECT_TRUE(absl::StrContains(feature.dom, "<rect ")) << "the histogram's bars";
  EXPECT_TRUE(absl::StrContains(feature.dom, "class=\"logits raised\""));
  EXPECT_TRUE(absl::StrContains(feature.dom, "class=\"logits lowered\""));
  EXPECT_TRUE(absl::StrContains(feature.dom, "<table class=\"neighbours\""));
  ExpectNoJavaScriptErrors(feature, "feature page");

  // The files behind it need the token.
  std::smatch port;
  ASSERT_TRUE(std::regex_search(console, port, std::regex(":([0-9]+)/")));
  httplib::Client http("127.0.0.1", std::stoi(port.str(1)));
  const std::string data = absl::StrCat("/api/runs/", run_id, "/features/data/index.js");
  EXPECT_EQ(http.Get(data.c_str())->status, 401);
  EXPECT_EQ(http.Get(data.c_str(), {{"Authorization", std::string("Bearer ") + kToken}})->status,
            200);
}

}  // namespace
}  // namespace sae
