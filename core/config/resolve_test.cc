#include <string>

#include "core/config/run_config.h"
#include "core/model/hook_point.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::config {
namespace {

using ::testing::HasSubstr;

// GPT-2 small: 12 layers, d_model 768, 12 heads of 64, d_mlp 3072, n_ctx 1024, vocab 50257.
constexpr model::ModelDims kGpt2Small = {12, 768, 12, 3072, 1024, 50257};

// Parses a config whose first line of `extra` is line 3, then resolves it against GPT-2 small.
absl::StatusOr<RunConfig> Resolve(const std::string& extra) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(
      "model_path: /models/gpt2\ndataset_path: /data/corpus.txt\n" + extra, "run.yaml");
  if (!config.ok()) return config.status();
  absl::Status status = ResolveAgainstModel(*config, kGpt2Small);
  if (!status.ok()) return status;
  return config;
}

std::string ErrorOf(const std::string& extra) {
  absl::StatusOr<RunConfig> config = Resolve(extra);
  EXPECT_FALSE(config.ok()) << extra;
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(ResolveAgainstModelTest, DerivesLayerAndWidthOfTheResidualStream) {
  absl::StatusOr<RunConfig> c = Resolve("hook_point: blocks.2.hook_resid_pre\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hook_point_layer, 2);
  EXPECT_EQ(c->d_in, 768);
  EXPECT_EQ(c->d_sae, 768 * 4);
  EXPECT_EQ(c->expansion_factor, 4);
}

TEST(ResolveAgainstModelTest, DerivesTheDefaultHookAsTheSeedDoes) {
  absl::StatusOr<RunConfig> c = Resolve("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hook_point_layer, 0);  // blocks.0.hook_mlp_out
  EXPECT_EQ(c->d_in, 768);
}

TEST(ResolveAgainstModelTest, DerivesTheMlpWidthFromDMlp) {
  absl::StatusOr<RunConfig> c = Resolve("hook_point: blocks.5.mlp.hook_post\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hook_point_layer, 5);
  EXPECT_EQ(c->d_in, 3072);
}

TEST(ResolveAgainstModelTest, DerivesOneHeadsWidthOrAllHeadsFlattened) {
  absl::StatusOr<RunConfig> one =
      Resolve("hook_point: blocks.3.attn.hook_z\nhook_point_head_index: 4\n");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->d_in, 64);
  absl::StatusOr<RunConfig> all = Resolve("hook_point: blocks.3.attn.hook_z\n");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->d_in, 768);
}

TEST(ResolveAgainstModelTest, RunsEmbeddingHooksThroughLayerZeroAndFinalHooksThroughTheLast) {
  absl::StatusOr<RunConfig> embed = Resolve("hook_point: hook_embed\n");
  ASSERT_TRUE(embed.ok()) << embed.status();
  EXPECT_EQ(embed->hook_point_layer, 0);
  absl::StatusOr<RunConfig> final_norm = Resolve("hook_point: ln_final.hook_normalized\n");
  ASSERT_TRUE(final_norm.ok()) << final_norm.status();
  EXPECT_EQ(final_norm->hook_point_layer, 11);
  EXPECT_EQ(final_norm->d_in, 768);
}

TEST(ResolveAgainstModelTest, AcceptsWhatAgreesWithTheModel) {
  absl::StatusOr<RunConfig> c = Resolve(
      "hook_point: blocks.2.hook_resid_pre\nhook_point_layer: 2\nd_in: 768\n"
      "expansion_factor: 64\nd_sae: 49152\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_sae, 49152);
}

TEST(ResolveAgainstModelTest, RejectsADInThatContradictsTheHookPoint) {
  EXPECT_EQ(ErrorOf("hook_point: blocks.2.hook_resid_pre\nlr: 4e-4\nd_in: 512\n"),
            "run.yaml:5: d_in: 512 contradicts hook_point blocks.2.hook_resid_pre (line 3), "
            "whose activations have 768 dimensions in this model; remove d_in (it is derived) or "
            "write 768");
  EXPECT_THAT(
      ErrorOf("hook_point: blocks.3.attn.hook_z\nhook_point_head_index: 0\nd_in: 768\n"),
      HasSubstr("run.yaml:5: d_in: 768 contradicts hook_point blocks.3.attn.hook_z (line 3), "
                "whose activations have 64 dimensions"));
}

TEST(ResolveAgainstModelTest, RejectsAHookPointLayerThatContradictsAFinalHook) {
  EXPECT_EQ(ErrorOf("hook_point: ln_final.hook_normalized\nhook_point_layer: 3\n"),
            "run.yaml:4: hook_point_layer: 3 contradicts hook_point ln_final.hook_normalized "
            "(line 3), which needs the forward through layer 11; remove hook_point_layer (it is "
            "derived) or make them agree");
}

TEST(ResolveAgainstModelTest, RejectsAHookInALayerTheModelLacks) {
  EXPECT_EQ(ErrorOf("hook_point: blocks.12.hook_resid_post\n"),
            "run.yaml:3: hook_point: hook point 'blocks.12.hook_resid_post' names layer 12 but "
            "the model has 12 layers (0..11)");
}

TEST(ResolveAgainstModelTest, RejectsAHeadIndexBeyondTheModelsHeads) {
  EXPECT_EQ(ErrorOf("hook_point: blocks.0.attn.hook_q\nhook_point_head_index: 12\n"),
            "run.yaml:4: hook_point_head_index: 12 is out of range: the model has 12 heads; "
            "allowed: 0 to 11");
}

TEST(ResolveAgainstModelTest, RejectsAContextLongerThanTheModels) {
  EXPECT_EQ(ErrorOf("context_size: 2048\n"),
            "run.yaml:3: context_size: 2048 is longer than the model's context of 1024 tokens; "
            "allowed: 1 to 1024");
}

TEST(ResolveAgainstModelTest, RejectsKLargerThanTheDerivedDSae) {
  EXPECT_EQ(ErrorOf("architecture: topk\nexpansion_factor: 1\nk: 1000\n"),
            "run.yaml:5: k: 1000 is larger than d_sae 768; allowed: 1 to d_sae");
}

TEST(ResolveAgainstModelTest, RejectsDSaeThatContradictsTheDerivedWidth) {
  EXPECT_EQ(ErrorOf("expansion_factor: 4\nd_sae: 1000\n"),
            "run.yaml:4: d_sae: 1000 contradicts expansion_factor 4 (line 3) times d_in 768 = "
            "3072; write only one of them");
}

TEST(ResolveAgainstModelTest, KeepsDSaeWrittenAlone) {
  absl::StatusOr<RunConfig> c = Resolve("d_sae: 1000\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_sae, 1000);
  EXPECT_EQ(c->expansion_factor, std::nullopt);
}

TEST(ResolveAgainstModelTest, IsIdempotent) {
  absl::StatusOr<RunConfig> c = Resolve("hook_point: blocks.2.hook_resid_pre\n");
  ASSERT_TRUE(c.ok()) << c.status();
  RunConfig again = *c;
  ASSERT_TRUE(ResolveAgainstModel(again, kGpt2Small).ok());
  EXPECT_EQ(again, *c);
}

TEST(ResolveAgainstModelTest, ChecksAResolvedConfigAgainstAnotherModel) {
  absl::StatusOr<RunConfig> c = Resolve("hook_point: blocks.2.hook_resid_pre\n");
  ASSERT_TRUE(c.ok()) << c.status();
  model::ModelDims tiny = {4, 64, 4, 256, 128, 50257};
  absl::Status status = ResolveAgainstModel(*c, tiny);
  EXPECT_THAT(status.message(), HasSubstr("run.yaml: d_in: 768 contradicts hook_point "
                                          "blocks.2.hook_resid_pre (line 3), whose activations "
                                          "have 64 dimensions"));
}

}  // namespace
}  // namespace sae::config
