// Many SAEs from one activation stream in one process (RunLocalTraining with sweep: and
// hook_points:): each SAE equals the SAE of a separate run of its own config, and a resumed
// run equals one trained straight through.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/sweep.h"
#include "core/data/token_file_format.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_weights.h"
#include "core/training/checkpoint.h"
#include "core/training/local_training.h"
#include "core/util/files.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::training {
namespace {

using ::testing::ElementsAre;

class ManySaesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const model::Gpt2Config c = support::TinyConfig();
    ASSERT_TRUE(model::SaveGpt2(model::RandomGpt2Weights(c, 1), dir_ + "/model").ok());
    std::mt19937 rng(3);
    std::vector<int32_t> tokens;
    for (int doc = 0; doc < 300; ++doc) {
      int len = 10 + static_cast<int>(rng() % 50);
      for (int i = 0; i < len; ++i) tokens.push_back(static_cast<int32_t>(rng() % 1000));
      tokens.push_back(50256);
    }
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tokens.bin", *data::EncodeNanoGptBin(tokens)).ok());
  }

  // A small run; `extra` adds keys (sweep:, hook_points:, overrides of these).
  config::RunConfig Config(const std::string& extra, bool ghost = true) {
    std::string yaml =
        absl::StrCat("model_path: ", dir_, "/model\n", "dataset_path: ", dir_, "/tokens.bin\n",
                     "context_size: 16\n"
                     "expansion_factor: 4\n"
                     "train_batch_size: 64\n"
                     "total_training_tokens: 1280\n"
                     "n_batches_in_buffer: 8\n"
                     "store_batch_size: 4\n"
                     "lr: 0.001\n"
                     "lr_warm_up_steps: 2\n"
                     "dead_feature_window: 3\n"
                     "feature_sampling_window: 5\n"
                     "n_eval_batches: 0\n"
                     "b_dec_init_method: geometric_median\n",
                     ghost ? "use_ghost_grads: true\n" : "", extra);
    auto config = config::ParseRunConfig(yaml, "test.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  absl::StatusOr<LocalTrainingResult> Train(const config::RunConfig& config, const std::string& out,
                                            const std::string& resume = "") {
    LocalTrainingOptions options;
    options.output_dir = dir_ + "/" + out;
    if (!resume.empty()) options.resume_dir = resume;
    return RunLocalTraining(config, options);
  }

  // The largest difference between two exported SAEs' parameters.
  static double Difference(const std::string& a_dir, const std::string& b_dir) {
    absl::StatusOr<io::SaeLensSae> a = io::ReadSaeLens(a_dir);
    absl::StatusOr<io::SaeLensSae> b = io::ReadSaeLens(b_dir);
    EXPECT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(b.ok()) << b.status();
    if (!a.ok() || !b.ok()) return 1e30;
    double d = 0;
    for (auto [x, y] : {std::pair{a->W_enc, b->W_enc}, std::pair{a->W_dec, b->W_dec},
                        std::pair{a->b_enc, b->b_enc}, std::pair{a->b_dec, b->b_dec}}) {
      EXPECT_EQ(x.sizes(), y.sizes());
      if (x.sizes() != y.sizes()) return 1e30;
      d = std::max(d, (x - y).abs().max().item<double>());
    }
    return d;
  }

  const support::TempDir temp_{"many_saes_test"};
  const std::string dir_ = temp_.path();
};

TEST_F(ManySaesTest, AnL1SweepTrainsEachSaeAsItsOwnRunWould) {
  const std::string run =
      "shuffle: false\n"
      "hook_point: blocks.1.hook_resid_pre\n"
      "sweep:\n"
      "  l1_coefficient: [4e-4, 1e-3, 3e-3]\n";
  auto swept = Train(Config(run), "sweep");
  ASSERT_TRUE(swept.ok()) << swept.status();
  ASSERT_EQ(swept->saes.size(), 3u);
  EXPECT_EQ(swept->steps, 20);
  const std::vector<std::string> coefficients = {"0.0004", "0.001", "0.003"};
  const std::vector<std::string> names = {"l1=0.0004", "l1=0.001", "l1=0.003"};
  for (size_t i = 0; i < 3; ++i) {
    const std::string name = "blocks.1.hook_resid_pre/" + names[i];
    EXPECT_EQ(swept->saes[i].name, name);
    EXPECT_EQ(swept->saes[i].final_dir, dir_ + "/sweep/saes/" + name + "/final");
    auto alone = Train(Config("shuffle: false\nhook_point: blocks.1.hook_resid_pre\n"
                              "l1_coefficient: " +
                              coefficients[i] + "\n"),
                       "alone" + std::to_string(i));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LE(Difference(swept->saes[i].final_dir, alone->final_dir), 1e-5) << name;
    EXPECT_NEAR(swept->saes[i].last.overall_loss, alone->last.overall_loss, 1e-5) << name;
  }
  // The coefficients do differ, so the SAEs do.
  EXPECT_GT(Difference(swept->saes[0].final_dir, swept->saes[2].final_dir), 1e-4);
}

TEST_F(ManySaesTest, TwoHooksTrainAsTwoSeparateRunsWould) {
  auto both = Train(Config("shuffle: false\n"
                           "hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_mlp_out]\n"),
                    "hooks");
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->saes.size(), 2u);
  int index = 0;
  for (const char* hook : {"blocks.0.hook_resid_pre", "blocks.1.hook_mlp_out"}) {
    EXPECT_EQ(both->saes[index].name, hook);
    auto alone = Train(Config(absl::StrCat("shuffle: false\nhook_point: ", hook, "\n")),
                       absl::StrCat("hook", index));
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_LE(Difference(both->saes[index].final_dir, alone->final_dir), 1e-5) << hook;
    auto exported = io::ReadSaeLens(both->saes[index].final_dir);
    ASSERT_TRUE(exported.ok());
    EXPECT_EQ(exported->metadata.hook_name, hook);
    ++index;
  }
}

// The mixing buffer's shuffle depends only on the seed and the row counts, so one buffer of
// every hook's columns serves each hook in a separate run's order even when shuffling.
TEST_F(ManySaesTest, ShuffledHooksAlsoTrainAsSeparateRunsWould) {
  auto both = Train(Config("hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_post]\n"
                           "sweep:\n  lr: [0.001, 0.002]\n"),
                    "shuffled");
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_EQ(both->saes.size(), 4u);
  EXPECT_EQ(both->saes[3].name, "blocks.1.hook_resid_post/lr=0.002");
  config::RunConfig config = Config("hook_point: blocks.1.hook_resid_post\n");
  ASSERT_TRUE(config::ApplyOverrides(config, {"lr=0.002"}).ok());
  auto alone = Train(config, "alone");
  ASSERT_TRUE(alone.ok()) << alone.status();
  EXPECT_LE(Difference(both->saes[3].final_dir, alone->final_dir), 1e-5);
}

TEST_F(ManySaesTest, ResumingAManySaeRunHalfwayEqualsTrainingStraightThrough) {
  const std::string run =
      "shuffle: false\n"
      "n_checkpoints: 2\n"
      "architecture: topk\n"
      "hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n"
      "sweep:\n  k: [4, 8]\n";
  auto straight = Train(Config(run, false), "straight");
  ASSERT_TRUE(straight.ok()) << straight.status();
  const std::string step10 = dir_ + "/straight/checkpoints/" + CheckpointName(10);
  EXPECT_TRUE(std::filesystem::exists(step10 + "/run.yaml"));
  for (const auto& sae : straight->saes) {
    EXPECT_TRUE(std::filesystem::exists(step10 + "/saes/" + sae.name + "/state.json")) << sae.name;
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/straight/saes/" + sae.name + "/run.yaml"));
  }
  auto resumed = Train(Config(run, false), "resumed", step10);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->steps, 20);
  ASSERT_EQ(resumed->saes.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_LE(Difference(straight->saes[i].final_dir, resumed->saes[i].final_dir), 1e-6)
        << straight->saes[i].name;
  }
  // A checkpoint of a single SAE of the run is not a checkpoint of the run.
  auto wrong = Train(Config(run, false), "wrong", step10 + "/saes/blocks.0.hook_resid_pre/k=4");
  EXPECT_FALSE(wrong.ok());
}

}  // namespace
}  // namespace sae::training
