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
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/data/test_folder.h"
#include "core/data/token_file_format.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sae {
namespace {

namespace fs = std::filesystem;
using data::TestFolder;

constexpr char kToken[] = "console-test-token-7f3a";

fs::path BuildDir() {
  if (const char* dir = std::getenv("SAE_BINARY_DIR"); dir != nullptr && *dir != '\0') return dir;
  return fs::canonical("/proc/self/exe").parent_path().parent_path();
}
std::string SaectlPath() { return (BuildDir() / "bin" / "saectl").string(); }

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Cmdline(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"), std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// SIGKILL to every process of the cluster in `data_dir` that still runs.
void KillCluster(const std::string& data_dir) {
  absl::StatusOr<std::string> record = ReadFile(data_dir + "/cluster.json");
  if (!record.ok()) return;
  nlohmann::json j = nlohmann::json::parse(*record, nullptr, false);
  if (j.is_discarded() || !j.contains("processes")) return;
  for (const auto& process : j["processes"]) {
    const int pid = process.value("pid", -1);
    if (pid > 0 && absl::StrContains(Cmdline(pid), process.value("binary", "?"))) {
      ::kill(pid, SIGKILL);
    }
  }
}

// A nanoGPT .bin of `documents` random documents of ids below 1000.
absl::Status WriteRandomTokens(const std::string& path, int documents) {
  std::mt19937 rng(7);
  std::vector<int32_t> tokens;
  for (int doc = 0; doc < documents; ++doc) {
    const int length = 10 + static_cast<int>(rng() % 60);
    for (int i = 0; i < length; ++i) tokens.push_back(static_cast<int32_t>(rng() % 1000));
    tokens.push_back(50256);
  }
  absl::StatusOr<std::string> bytes = data::EncodeNanoGptBin(tokens);
  if (!bytes.ok()) return bytes.status();
  return WriteFileAtomically(path, *bytes);
}

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
    artifacts_ = BuildDir() / "tests" / "console-artifacts";
    fs::create_directories(artifacts_);
    StartReaper();
  }

  void TearDown() override {
    if (cluster_up_) {
      Result down =
          Saectl(absl::StrCat("cluster down --data-dir ", DataDir(), " --timeout 10"), 60);
      EXPECT_EQ(down.code, 0) << down.err;
      if (HasFailure()) DumpLogs();
    }
    if (reaper_ > 0) {
      ::kill(reaper_, SIGKILL);
      ::waitpid(reaper_, nullptr, 0);
    }
  }

  void StartReaper() {
    const std::string data_dir = DataDir();
    const pid_t parent = ::getpid();
    reaper_ = ::fork();
    if (reaper_ != 0) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGUSR1);
    if (::getppid() == parent) {
      int signal = 0;
      sigwait(&set, &signal);
    }
    KillCluster(data_dir);
    ::_exit(0);
  }

  void DumpLogs() {
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(DataDir() + "/logs", error)) {
      std::string text = ReadFile(entry.path().string()).value_or("");
      if (text.size() > 4000) text = "...\n" + text.substr(text.size() - 4000);
      std::fprintf(stderr, "==== %s ====\n%s\n", entry.path().c_str(), text.c_str());
    }
  }

  // Runs `command` (split by the shell) under `timeout -s KILL`.
  Result Shell(const std::string& command, int timeout_seconds) {
    const std::string out = absl::StrCat(folder_.path(), "/out.", calls_);
    const std::string err = absl::StrCat(folder_.path(), "/err.", calls_++);
    const std::string line = absl::StrCat("timeout -s KILL ", timeout_seconds, " ", command, " >",
                                          out, " 2>", err, " </dev/null");
    const int status = std::system(line.c_str());
    Result result;
    result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadFile(out).value_or("");
    result.err = ReadFile(err).value_or("");
    return result;
  }

  Result Saectl(const std::string& args, int timeout_seconds = 60) {
    return Shell(SaectlPath() + " " + args, timeout_seconds);
  }

  std::string DataDir() const { return folder_.path() + "/cluster"; }

  // `saectl cluster up` with one activation server and one trainer; returns the console URL it
  // printed, e.g. http://127.0.0.1:41234/.
  std::string StartCluster() {
    Result up = Saectl(absl::StrCat("cluster up --data-dir ", DataDir(), " --bin-dir ",
                                    (BuildDir() / "bin").string(),
                                    " --port 0 --activation-servers 1 --trainers 1",
                                    " --lease-seconds 2 --threads 1 --wait 60"),
                       90);
    cluster_up_ = true;
    EXPECT_EQ(up.code, 0) << up.out << up.err;
    std::smatch match;
    const std::regex url("console: (http://127\\.0\\.0\\.1:[0-9]+/)");
    if (!std::regex_search(up.out, match, url)) {
      ADD_FAILURE() << "cluster up printed no console URL:\n" << up.out;
      return "";
    }
    const size_t at = up.out.find("SAECTL_SERVER=");
    EXPECT_NE(at, std::string::npos) << up.out;
    if (at != std::string::npos) {
      const std::string address(
          absl::StripAsciiWhitespace(up.out.substr(at + 14, up.out.find('\n', at) - at - 14)));
      ::setenv("SAECTL_SERVER", address.c_str(), 1);
    }
    return match.str(1);
  }

  // The run.yaml of a gpt2-tiny run of `steps` steps of 256 tokens, reporting every 2 steps.
  std::string WriteRunYaml(int64_t steps, int checkpoints = 2) {
    const std::string dir = folder_.path();
    if (!fs::exists(dir + "/model")) {
      Result init = Saectl("model init --preset gpt2-tiny --seed 0 --out " + dir + "/model", 120);
      EXPECT_EQ(init.code, 0) << init.err;
      EXPECT_TRUE(WriteRandomTokens(dir + "/tokens.bin", 4000).ok());
    }
    return folder_.Write(
        "run.yaml", absl::StrCat("model_path: ", dir, "/model\ndataset_path: ", dir,
                                 "/tokens.bin\nhook_point: blocks.1.hook_resid_pre\n"
                                 "context_size: 16\nexpansion_factor: 4\ntrain_batch_size: 256\n"
                                 "total_training_tokens: ",
                                 steps * 256,
                                 "\nn_batches_in_buffer: 8\nstore_batch_size: 4\nlr: 0.001\n"
                                 "lr_warm_up_steps: 2\nb_dec_init_method: mean\n"
                                 "wandb_log_frequency: 2\nfeature_sampling_window: 20\n"
                                 "n_checkpoints: ", checkpoints,
                                 "\nmax_restarts: 2\nactivation_servers: 1\ntrainers: 1\n"));
  }

  // Loads `url` in headless chromium and returns the DOM after `budget_ms` of virtual time;
  // with `screenshot`, also saves a 1400x1000 PNG of it under the artifacts folder.
  Page Load(const std::string& url, const std::string& screenshot = "", int budget_ms = 6000) {
    const std::string profile = absl::StrCat(folder_.path(), "/chromium-", calls_);
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

  // Polls the log of the cluster's process `name` every 20 ms until it holds `text`.
  void WaitForProcessLog(const std::string& name, const std::string& text, int seconds = 120) {
    const std::string path = DataDir() + "/logs/" + name + ".log";
    const absl::Time give_up = absl::Now() + absl::Seconds(seconds);
    while (absl::Now() < give_up) {
      if (absl::StrContains(ReadFile(path).value_or(""), text)) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << name << " never logged \"" << text << "\"";
  }

  // SIGKILL to the cluster's process `name`; returns once it is gone.
  void KillProcess(const std::string& name) {
    auto record = nlohmann::json::parse(*ReadFile(DataDir() + "/cluster.json"));
    for (const auto& process : record["processes"]) {
      if (process["name"] != name) continue;
      const int pid = process["pid"].get<int>();
      ASSERT_EQ(::kill(pid, SIGKILL), 0) << name;
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      while (!Cmdline(pid).empty() && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
      ASSERT_TRUE(Cmdline(pid).empty()) << name << " survived SIGKILL";
      return;
    }
    FAIL() << "no process " << name;
  }

  // No JavaScript error on the page: none caught by the page, none in the browser's log.
  static void ExpectNoJavaScriptErrors(const Page& page, const std::string& what) {
    EXPECT_EQ(page.Attribute("id", "js-errors", "data-count"), "0") << what << "\n" << page.dom;
    EXPECT_FALSE(absl::StrContains(page.log, "Uncaught")) << what << "\n" << page.log;
  }

  TestFolder folder_;
  fs::path artifacts_;
  int calls_ = 0;
  bool cluster_up_ = false;
  pid_t reaper_ = -1;
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
  // 300 steps reported every 2 steps; the trainer's sender may replace a report not sent yet.
  EXPECT_GE(l0_points, 30) << run.dom;
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
  Result restarted = Saectl(absl::StrCat("cluster up --data-dir ", DataDir(), " --wait 60"), 90);
  ASSERT_EQ(restarted.code, 0) << restarted.out << restarted.err;
  Page again = Load(absl::StrCat(login_url, "#/run/", run_id), "run-after-restart.png", 8000);
  EXPECT_EQ(again.BodyAttribute("data-ready"), "1") << again.dom;
  EXPECT_EQ(again.ChartPoints("l0"), l0_points) << "the same history after the restart";
  ExpectNoJavaScriptErrors(again, "run page after a controller restart");

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
  Result restarted = Saectl(absl::StrCat("cluster up --data-dir ", DataDir(), " --wait 60"), 90);
  ASSERT_EQ(restarted.code, 0) << restarted.out << restarted.err;
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

}  // namespace
}  // namespace sae
