// saectl features end to end on a random gpt2-tiny and a random SAE, and the HTML dashboard it
// writes in a real browser: Debian's chromium, headless, loads index.html and feature.html#N
// from disk (file://, no server) with --dump-dom after a virtual-time budget. The pages mark
// what they drew in the DOM: body[data-ready] once the data arrived, body[data-rows] (index
// rows shown), #js-errors' data-count (errors caught by the page), the histogram's data-bars;
// the test also reads the rendered rows, highlighted tokens and logit tables, and chromium's own
// log must hold no "Uncaught" error. Screenshots go to <build>/tests/features-artifacts/.
//
// Every chromium and saectl call runs under `timeout -s KILL`.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "support/temp_dir.h"
#include "core/data/token_file_format.h"
#include "core/io/saelens.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace sae {
namespace {

namespace fs = std::filesystem;
using support::TempDir;

constexpr int64_t kDSae = 300;  // two chunks of 256 features: the second loads lazily

fs::path BuildDir() {
  if (const char* dir = std::getenv("SAE_BINARY_DIR"); dir != nullptr && *dir != '\0') return dir;
  return fs::canonical("/proc/self/exe").parent_path().parent_path();
}

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

int Count(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), re),
                                        std::sregex_iterator()));
}

std::string BodyAttribute(const std::string& dom, const std::string& name) {
  std::smatch match;
  if (!std::regex_search(dom, match, std::regex("<body[^>]* " + name + "=\"([^\"]*)\""))) return "";
  return match.str(1);
}

class FeaturesBrowserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    folder_ = new TempDir();
    artifacts_ = BuildDir() / "tests" / "features-artifacts";
    fs::create_directories(artifacts_);
  }
  static void TearDownTestSuite() {
    delete folder_;
    folder_ = nullptr;
  }

  static Result Shell(const std::string& command, int timeout_seconds) {
    const std::string out = absl::StrCat(folder_->path(), "/out.", calls_);
    const std::string err = absl::StrCat(folder_->path(), "/err.", calls_++);
    const std::string line = absl::StrCat("timeout -s KILL ", timeout_seconds, " ", command, " >",
                                          out, " 2>", err, " </dev/null");
    const int status = std::system(line.c_str());
    Result result;
    result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadFile(out).value_or("");
    result.err = ReadFile(err).value_or("");
    return result;
  }
  static Result Saectl(const std::string& args, int timeout_seconds = 300) {
    return Shell((BuildDir() / "bin" / "saectl").string() + " " + args, timeout_seconds);
  }

  // The model, the data and the SAE once; then `saectl features` into out/.
  static std::string Dashboard() {
    static std::string out;
    if (!out.empty()) return out;
    const std::string dir = folder_->path();
    Result init = Saectl("model init --preset gpt2-tiny --seed 0 --out " + dir + "/model", 120);
    EXPECT_EQ(init.code, 0) << init.err;
    std::mt19937 rng(11);
    std::vector<int32_t> tokens;
    for (int doc = 0; doc < 60; ++doc) {
      const int length = 20 + static_cast<int>(rng() % 60);
      for (int i = 0; i < length; ++i) tokens.push_back(static_cast<int32_t>(rng() % 2000));
      tokens.push_back(50256);
    }
    EXPECT_TRUE(WriteFileAtomically(dir + "/tokens.bin", *data::EncodeNanoGptBin(tokens)).ok());
    at::manual_seed(5);
    io::SaeLensSae sae;
    sae.W_enc = at::randn({64, kDSae}) / 8;
    sae.b_enc = at::zeros({kDSae});  // every live feature fires on about half the tokens
    sae.b_enc.narrow(0, 0, 4).fill_(-1e3);  // features 0..3 are dead
    sae.W_dec = at::randn({kDSae, 64});
    sae.W_dec = sae.W_dec / sae.W_dec.norm(2, {1}, true);
    sae.b_dec = at::zeros({64});
    sae.metadata.hook_name = "blocks.1.hook_resid_pre";
    sae.metadata.hook_layer = 1;
    sae.metadata.context_size = 32;
    sae.metadata.model_name = "gpt2-tiny";
    EXPECT_TRUE(io::WriteSaeLens(dir + "/sae", sae).ok());
    Result run = Saectl(absl::StrCat("features ", dir, "/sae --model ", dir, "/model --dataset ",
                                     dir, "/tokens.bin --tokens 2048 --top 8 --out ", dir,
                                     "/dashboard --threads 2"));
    EXPECT_EQ(run.code, 0) << run.out << run.err;
    EXPECT_TRUE(absl::StrContains(run.out, "300 features")) << run.out;
    out = dir + "/dashboard";
    return out;
  }

  // chromium's DOM of `url` after `budget_ms` of virtual time; with `screenshot`, also a PNG.
  static Result Load(const std::string& url, const std::string& screenshot = "",
                     int budget_ms = 4000) {
    const std::string profile = absl::StrCat(folder_->path(), "/chromium-", calls_);
    const std::string flags =
        absl::StrCat("chromium --headless --no-sandbox --disable-gpu --no-first-run ",
                     "--disable-dev-shm-usage --user-data-dir=", profile,
                     " --allow-file-access-from-files --enable-logging=stderr --v=0",
                     " --window-size=1400,1400 --virtual-time-budget=", budget_ms, " ");
    Result dump = Shell(absl::StrCat(flags, "--dump-dom '", url, "'"), 90);
    EXPECT_EQ(dump.code, 0) << url << "\n" << dump.err;
    EXPECT_FALSE(absl::StrContains(dump.err, "Uncaught")) << dump.err;
    EXPECT_TRUE(absl::StrContains(dump.out, "id=\"js-errors\"")) << dump.out.substr(0, 2000);
    EXPECT_TRUE(absl::StrContains(dump.out, "data-count=\"0\"")) << "the page caught an error:\n"
                                                                  << dump.out.substr(0, 3000);
    if (!screenshot.empty()) {
      const std::string png = (artifacts_ / screenshot).string();
      Result shot = Shell(absl::StrCat(flags, "--screenshot=", png, " '", url, "'"), 90);
      EXPECT_EQ(shot.code, 0) << shot.err;
      EXPECT_TRUE(fs::exists(png) && fs::file_size(png) > 10000) << png;
    }
    return dump;
  }

  // A live feature (fired at least once) and a dead one, from features.jsonl.
  static nlohmann::json Record(bool dead) {
    std::ifstream in(Dashboard() + "/features.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j["dead"].get<bool>() == dead && (dead || j["feature"].get<int64_t>() >= 256)) return j;
    }
    ADD_FAILURE() << "no " << (dead ? "dead" : "live") << " feature";
    return nlohmann::json();
  }

  static TempDir* folder_;
  static fs::path artifacts_;
  static int calls_;
};

TempDir* FeaturesBrowserTest::folder_ = nullptr;
fs::path FeaturesBrowserTest::artifacts_;
int FeaturesBrowserTest::calls_ = 0;

TEST_F(FeaturesBrowserTest, WritesRecordsAndSummary) {
  const std::string out = Dashboard();
  const nlohmann::json summary = nlohmann::json::parse(*ReadFile(out + "/summary.json"));
  EXPECT_EQ(summary["features"], kDSae);
  EXPECT_EQ(summary["tokens"], 2048);
  EXPECT_GE(summary["dead_features"].get<int>(), 4);
  const nlohmann::json live = Record(false);
  EXPECT_GT(live["count"].get<int64_t>(), 0);
  EXPECT_FALSE(live["top_examples"].empty());
  EXPECT_EQ(live["top_examples"][0]["tokens"].size(), live["top_examples"][0]["token_ids"].size());
  EXPECT_EQ(live["logits"]["raised"].size(), 10u);
  EXPECT_EQ(live["neighbours"].size(), 10u);
  for (const char* file : {"index.html", "feature.html", "assets/dashboard.js",
                           "assets/dashboard.css", "data/index.js", "data/vocab.js",
                           "data/chunk-00000.js", "data/chunk-00001.js"}) {
    EXPECT_TRUE(fs::exists(out + "/" + file)) << file;
  }
  // Nothing left beside it.
  for (const auto& entry : fs::directory_iterator(fs::path(out).parent_path())) {
    EXPECT_FALSE(absl::StrContains(entry.path().filename().string(), "dashboard.tmp"));
  }
}

TEST_F(FeaturesBrowserTest, IndexListsSortsAndSearchesFeatures) {
  const std::string url = "file://" + Dashboard() + "/index.html";
  Result page = Load(url, "features-index.png");
  EXPECT_EQ(BodyAttribute(page.out, "data-ready"), "1") << page.out.substr(0, 3000);
  EXPECT_EQ(BodyAttribute(page.out, "data-total"), std::to_string(kDSae));
  EXPECT_EQ(BodyAttribute(page.out, "data-rows"), "100");  // the first page
  EXPECT_EQ(Count(page.out, "<tr class=\"feature-row"), 100);
  EXPECT_GE(Count(page.out, "<tr class=\"feature-row dead\""), 4);  // features 0..3
  EXPECT_TRUE(absl::StrContains(page.out, "href=\"feature.html#0\""));

  // Sorted by frequency, live only: the first row is the most frequent feature.
  Result sorted = Load(url + "?sort=frequency&filter=alive");
  std::smatch first;
  ASSERT_TRUE(std::regex_search(sorted.out, first, std::regex("data-feature=\"([0-9]+)\"")));
  int64_t most = -1, best = -1;
  std::ifstream in(Dashboard() + "/features.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j["count"].get<int64_t>() > best) best = j["count"], most = j["feature"];
  }
  EXPECT_EQ(first.str(1), std::to_string(most));
  EXPECT_EQ(Count(sorted.out, "<tr class=\"feature-row dead\""), 0);

  // Search by a top token of a live feature: that feature is among the matches.
  const nlohmann::json live = Record(false);
  const int position = live["top_examples"][0]["position"].get<int>() -
                       live["top_examples"][0]["window_start"].get<int>();
  std::string token = live["top_examples"][0]["tokens"][position].get<std::string>();
  std::string query;
  for (char c : token) {
    if (std::isalnum(static_cast<unsigned char>(c))) query += c;
  }
  if (!query.empty()) {
    Result searched = Load(url + "?search=" + query + "&filter=alive");
    int matches = 0;
    ASSERT_TRUE(absl::SimpleAtoi(BodyAttribute(searched.out, "data-matches"), &matches));
    EXPECT_GE(matches, 1);
    EXPECT_LT(matches, kDSae);
  }
}

TEST_F(FeaturesBrowserTest, FeaturePageShowsContextsHistogramLogitsAndNeighbours) {
  const nlohmann::json live = Record(false);  // in the second chunk: loaded on demand
  const std::string id = std::to_string(live["feature"].get<int64_t>());
  Result page = Load("file://" + Dashboard() + "/feature.html#" + id, "features-feature.png");
  EXPECT_EQ(BodyAttribute(page.out, "data-ready"), "1") << page.out.substr(0, 3000);
  EXPECT_EQ(BodyAttribute(page.out, "data-feature"), id);
  // Highlighted tokens: one peak per example, tokens with activation > 0 coloured, a title with
  // the activation for the hover.
  const int examples = static_cast<int>(live["top_examples"].size());
  int samples = 0;
  for (const auto& g : live["interval_samples"]) samples += static_cast<int>(g["examples"].size());
  EXPECT_EQ(Count(page.out, "class=\"example\""), examples + samples);
  EXPECT_EQ(Count(page.out, "class=\"tok active peak\""), examples + samples);
  EXPECT_GE(Count(page.out, "class=\"tok active"), examples + samples);
  EXPECT_TRUE(std::regex_search(page.out, std::regex("title=\"[^\"]*activation [0-9]")));
  EXPECT_TRUE(absl::StrContains(page.out, "background-color: rgba(255, 126, 20"));
  // Histogram: one bar per bin.
  std::smatch bars;
  ASSERT_TRUE(std::regex_search(page.out, bars, std::regex("class=\"histogram\"[^>]*data-bars=\"([0-9]+)\"")));
  EXPECT_EQ(bars.str(1), std::to_string(live["histogram"]["counts"].size()));
  EXPECT_EQ(Count(page.out, "<rect "), static_cast<int>(live["histogram"]["counts"].size()));
  // Logit tables and neighbours.
  EXPECT_TRUE(absl::StrContains(page.out, "class=\"logits raised\""));
  EXPECT_TRUE(absl::StrContains(page.out, "class=\"logits lowered\""));
  EXPECT_EQ(Count(page.out, "<td class=\"value\">"), 20);
  EXPECT_EQ(Count(page.out, "<a href=\"#[0-9]+\">"), 10);
}

TEST_F(FeaturesBrowserTest, DeadFeatureIsShownAsDead) {
  const nlohmann::json dead = Record(true);
  const std::string id = std::to_string(dead["feature"].get<int64_t>());
  Result page = Load("file://" + Dashboard() + "/feature.html#" + id);
  EXPECT_EQ(BodyAttribute(page.out, "data-ready"), "1");
  EXPECT_TRUE(absl::StrContains(page.out, "Dead: did not fire on any of the 2048 tokens"));
  EXPECT_EQ(Count(page.out, "class=\"example\""), 0);
}

}  // namespace
}  // namespace sae
