#include "core/features/feature_output.h"

#include <filesystem>
#include <fstream>
#include <string>

#include "support/temp_dir.h"
#include "core/util/files.h"
#include "gtest/gtest.h"

namespace sae::features {
namespace {

namespace fs = std::filesystem;

// A report of 300 features (two chunks) over 3 contexts of 4 tokens; feature 1 is dead.
FeatureReport SmallReport(at::Tensor& contexts) {
  contexts = at::arange(12, at::kLong).view({3, 4}) + 100;
  CollectorOptions options;
  options.top_k = 2;
  options.window_before = 1;
  options.window_after = 1;
  std::vector<int64_t> features;
  for (int64_t f = 0; f < 300; ++f) features.push_back(f);
  FeatureCollector c(features, 4, options);
  at::Tensor acts = at::rand({300, 12}) * (at::rand({300, 12}) < 0.5);
  acts[1].zero_();
  acts[0] = at::tensor({0.f, 0.5f, 0.f, 0.f, 2.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f});
  c.Add(acts, 0);
  FeatureReport r;
  r.stats = c.Finish();
  r.contexts = 3;
  r.context_size = 4;
  r.tokens = 12;
  r.has_logits = true;
  r.raised.assign(300, {{7, 0.5f}, {8, 0.25f}});
  r.lowered.assign(300, {{9, -0.5f}});
  r.neighbours.assign(300, {{2, 0.75f}});
  return r;
}

TEST(FeatureOutputTest, WritesRecordsSummaryAndDashboard) {
  support::TempDir folder;
  at::Tensor contexts;
  const FeatureReport report = SmallReport(contexts);
  const std::string out = folder.path() + "/out";
  ASSERT_TRUE(WriteFeatureOutput(out, report, contexts, nullptr, {{"sae", "S"}}).ok());

  std::ifstream in(out + "/features.jsonl");
  std::string line;
  int lines = 0;
  nlohmann::json first;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j, FeatureRecord(report, static_cast<size_t>(lines), contexts, nullptr));
    if (lines == 0) first = j;
    ++lines;
  }
  EXPECT_EQ(lines, 300);
  EXPECT_EQ(first["count"], 3);
  EXPECT_EQ(first["max_activation"], 2);
  ASSERT_EQ(first["top_examples"].size(), 2u);
  const nlohmann::json& top = first["top_examples"][0];  // context 1, position 0
  EXPECT_EQ(top["context"], 1);
  EXPECT_EQ(top["window_start"], 0);
  EXPECT_EQ(top["token_ids"], nlohmann::json({104, 105}));
  EXPECT_EQ(top["activations"], nlohmann::json({2, 0}));
  EXPECT_EQ(top["tokens"], nlohmann::json({"<104>", "<105>"}));  // no tokenizer
  EXPECT_EQ(first["logits"]["raised"][0]["token_id"], 7);
  EXPECT_EQ(first["neighbours"][0]["cosine"], 0.75);
  const nlohmann::json dead = FeatureRecord(report, 1, contexts, nullptr);
  EXPECT_TRUE(dead["dead"].get<bool>());
  EXPECT_TRUE(dead["top_examples"].empty());

  const nlohmann::json summary = nlohmann::json::parse(*ReadFile(out + "/summary.json"));
  EXPECT_EQ(summary["sae"], "S");
  EXPECT_EQ(summary["features"], 300);
  EXPECT_GE(summary["dead_features"].get<int>(), 1);
  for (const char* file : {"index.html", "feature.html", "assets/dashboard.js",
                           "assets/dashboard.css", "data/index.js", "data/vocab.js",
                           "data/chunk-00000.js", "data/chunk-00001.js"}) {
    EXPECT_TRUE(fs::exists(out + "/" + file)) << file;
  }
  EXPECT_FALSE(fs::exists(out + "/data/chunk-00002.js"));
  const std::string chunk = *ReadFile(out + "/data/chunk-00001.js");
  EXPECT_EQ(chunk.rfind("SAE_DASH.chunk(1,[{\"feature\":256,", 0), 0u) << chunk.substr(0, 80);
}

TEST(FeatureOutputTest, ReplacesAPreviousOutputAndRefusesOtherFolders) {
  support::TempDir folder;
  at::Tensor contexts;
  const FeatureReport report = SmallReport(contexts);
  const std::string out = folder.path() + "/out";
  ASSERT_TRUE(WriteFeatureOutput(out, report, contexts, nullptr, {}).ok());
  folder.Write("out/stale.txt", "from the first run");
  ASSERT_TRUE(WriteFeatureOutput(out, report, contexts, nullptr, {}).ok());
  EXPECT_FALSE(fs::exists(out + "/stale.txt"));
  EXPECT_TRUE(fs::exists(out + "/features.jsonl"));

  folder.Write("notes/keep.txt", "mine");
  const absl::Status refused =
      WriteFeatureOutput(folder.path() + "/notes", report, contexts, nullptr, {});
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(fs::exists(folder.path() + "/notes/keep.txt"));

  // Stopped between chunks: Cancelled, the previous output intact, no temporary folder.
  const absl::Status stopped =
      WriteFeatureOutput(out, report, contexts, nullptr, {}, [] { return true; });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(fs::exists(out + "/features.jsonl"));
  for (const auto& entry : fs::directory_iterator(folder.path())) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "out" || name == "notes") << name;
  }
}

}  // namespace
}  // namespace sae::features
