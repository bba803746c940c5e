// run.yaml keys of the SAELens 6 architectures (batchtopk, matryoshka_batchtopk, jumprelu,
// gated): parsing, the list key matryoshka_widths, the checks across keys and the warnings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/config/run_config.h"

namespace sae::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kMinimal[] =
    "model_path: /models/gpt2\n"
    "dataset_path: /data/corpus.txt\n";

absl::StatusOr<RunConfig> Parse(const std::string& extra) {
  return ParseRunConfig(kMinimal + extra, "run.yaml");
}

TEST(ArchitectureKeysTest, ReadsTheJumpReLUKeysWithSaeLensDefaults) {
  absl::StatusOr<RunConfig> c = Parse("architecture: jumprelu\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->jumprelu_init_threshold, 0.01);
  EXPECT_EQ(c->jumprelu_bandwidth, 0.05);
  EXPECT_EQ(c->jumprelu_sparsity_loss_mode, JumpReLUSparsityLoss::kStep);
  EXPECT_EQ(c->l0_coefficient, 1.0);
  EXPECT_EQ(c->pre_act_loss_coefficient, std::nullopt);
  c = Parse(
      "architecture: jumprelu\njumprelu_sparsity_loss_mode: tanh\njumprelu_tanh_scale: 2\n"
      "l0_coefficient: 0.5\nl0_warm_up_steps: 100\npre_act_loss_coefficient: 3e-6\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->jumprelu_sparsity_loss_mode, JumpReLUSparsityLoss::kTanh);
  EXPECT_EQ(c->l0_warm_up_steps, 100);
  EXPECT_EQ(c->pre_act_loss_coefficient, 3e-6);
  EXPECT_EQ(Parse("jumprelu_sparsity_loss_mode: cubic\n").status().message(),
            "run.yaml:3: jumprelu_sparsity_loss_mode: expected one of step, tanh, quadratic, got "
            "'cubic'");
  c = Parse("architecture: jumprelu\njumprelu_sparsity_loss_mode: quadratic\ntarget_l0: 40\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->jumprelu_sparsity_loss_mode, JumpReLUSparsityLoss::kQuadratic);
  EXPECT_EQ(c->target_l0, 40.0);
  EXPECT_THAT(std::string(Parse("architecture: jumprelu\njumprelu_sparsity_loss_mode: quadratic\n")
                              .status()
                              .message()),
              ::testing::HasSubstr("pulls L0 towards target_l0, which is not set; add target_l0"));
}

TEST(ArchitectureKeysTest, ReadsMatryoshkaWidthsAsAYamlListAndWritesThemBack) {
  absl::StatusOr<RunConfig> c =
      Parse("architecture: matryoshka_batchtopk\nk: 8\nmatryoshka_widths: [128, 512]\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->matryoshka_widths, ElementsAre(128, 512));
  absl::StatusOr<RunConfig> block =
      Parse("architecture: matryoshka_batchtopk\nk: 8\nmatryoshka_widths:\n  - 128\n  - 512\n");
  ASSERT_TRUE(block.ok()) << block.status();
  EXPECT_EQ(*block, *c);
  absl::StatusOr<RunConfig> again = ParseRunConfig(ToYaml(*c), "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);
  EXPECT_EQ(ToJson(*c)["matryoshka_widths"], nlohmann::json({128, 512}));
  RunConfig overridden = *c;
  ASSERT_TRUE(ApplyOverrides(overridden, {"matryoshka_widths=[64, 256, 1024]"}).ok());
  EXPECT_THAT(overridden.matryoshka_widths, ElementsAre(64, 256, 1024));
}

TEST(ArchitectureKeysTest, RejectsMissingOrUnorderedMatryoshkaWidths) {
  EXPECT_EQ(Parse("architecture: matryoshka_batchtopk\nk: 8\n").status().message(),
            "run.yaml: matryoshka_widths: required by architecture matryoshka_batchtopk "
            "(line 3); give the nested widths, for example [128, 512]");
  EXPECT_EQ(Parse("architecture: matryoshka_batchtopk\nk: 8\nmatryoshka_widths: [512, 128]\n")
                .status()
                .message(),
            "run.yaml:5: matryoshka_widths: must be positive and strictly increasing");
  EXPECT_THAT(std::string(Parse("matryoshka_widths: [1, x]\n").status().message()),
              HasSubstr("expected a list of integers"));
  EXPECT_THAT(std::string(Parse("architecture: matryoshka_batchtopk\nk: 8\nd_in: 8\n"
                                "expansion_factor: 2\nmatryoshka_widths: [8, 32]\n")
                              .status()
                              .message()),
              HasSubstr("the last width 32 is larger than d_sae 16"));
}

TEST(ArchitectureKeysTest, BatchTopKNeedsKAndRefusesTheStandardSaesMechanisms) {
  EXPECT_EQ(Parse("architecture: batchtopk\n").status().message(),
            "run.yaml: k: required by architecture batchtopk (line 3); give the number of "
            "active latents per token, for example 32");
  EXPECT_THAT(std::string(Parse("architecture: gated\nuse_ghost_grads: true\n").status().message()),
              HasSubstr("ghost gradients belong to architecture standard, but architecture is "
                        "gated (line 3)"));
  EXPECT_TRUE(Parse("architecture: batchtopk\nk: 32\ntopk_threshold_lr: 0.02\n").ok());
}

TEST(ArchitectureKeysTest, WarnsAboutKeysTheArchitectureIgnores) {
  absl::StatusOr<RunConfig> c = Parse("l0_coefficient: 2\nk: 4\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->source.warnings,
              ElementsAre(HasSubstr("run.yaml:4: k: ignored by architecture standard"),
                          HasSubstr("run.yaml:3: l0_coefficient: ignored by architecture "
                                    "standard")));
  absl::StatusOr<RunConfig> gated = Parse("architecture: gated\nl1_coefficient: 0.5\n");
  ASSERT_TRUE(gated.ok()) << gated.status();
  EXPECT_TRUE(gated->source.warnings.empty());
}

}  // namespace
}  // namespace sae::config
