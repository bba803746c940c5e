#include "core/model/hook_point.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sae::model {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HookPointTest, EveryNameRoundTrips) {
  for (const HookPoint& h : AllHookPoints(12)) {
    auto parsed = ParseHookPoint(h.Name(), 12);
    ASSERT_TRUE(parsed.ok()) << h.Name();
    EXPECT_EQ(*parsed, h) << h.Name();
  }
  EXPECT_EQ(AllHookPoints(12).size(), 2u + 12u * 17u + 2u);
}

TEST(HookPointTest, ParsesTransformerLensNames) {
  auto h = ParseHookPoint("blocks.2.hook_resid_pre", 12);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->kind, HookKind::kResidPre);
  EXPECT_EQ(h->layer, 2);
  EXPECT_EQ(ParseHookPoint("blocks.11.attn.hook_z", 12)->kind, HookKind::kZ);
  EXPECT_EQ(ParseHookPoint("ln_final.hook_normalized", 12)->kind, HookKind::kLnFinalNormalized);
  EXPECT_EQ(ParseHookPoint("hook_embed", 12)->layer, -1);
}

TEST(HookPointTest, UnknownNamesListTheValidForms) {
  auto h = ParseHookPoint("blocks.2.hook_resid", 12);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("blocks.L.hook_resid_pre"));
  EXPECT_FALSE(ParseHookPoint("blocks.x.hook_resid_pre", 12).ok());
  EXPECT_FALSE(ParseHookPoint("blocks.-1.hook_resid_pre", 12).ok());
  EXPECT_FALSE(ParseHookPoint("", 12).ok());
}

TEST(HookPointTest, LayersBeyondTheModelAreOutOfRange) {
  auto h = ParseHookPoint("blocks.12.hook_resid_pre", 12);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(h.status().message()), HasSubstr("has 12 layers"));
}

TEST(HookPointTest, ShapesFollowTransformerLens) {
  ModelDims gpt2{12, 768, 12, 3072, 1024, 50257};
  EXPECT_THAT(ParseHookPoint("blocks.0.hook_resid_pre", 12)->Shape(gpt2, 2, 5),
              ElementsAre(2, 5, 768));
  EXPECT_THAT(ParseHookPoint("blocks.0.attn.hook_z", 12)->Shape(gpt2, 2, 5),
              ElementsAre(2, 5, 12, 64));
  EXPECT_THAT(ParseHookPoint("blocks.0.attn.hook_pattern", 12)->Shape(gpt2, 2, 5),
              ElementsAre(2, 12, 5, 5));
  EXPECT_THAT(ParseHookPoint("blocks.0.mlp.hook_post", 12)->Shape(gpt2, 2, 5),
              ElementsAre(2, 5, 3072));
  EXPECT_THAT(ParseHookPoint("blocks.0.ln1.hook_scale", 12)->Shape(gpt2, 2, 5),
              ElementsAre(2, 5, 1));
  EXPECT_EQ(ParseHookPoint("blocks.0.attn.hook_z", 12)->ActivationSize(gpt2, true), 64);
  EXPECT_EQ(ParseHookPoint("blocks.0.attn.hook_z", 12)->ActivationSize(gpt2, false), 768);
  EXPECT_EQ(ParseHookPoint("blocks.3.hook_mlp_out", 12)->ActivationSize(gpt2, false), 768);
}

TEST(HookPointTest, OrdinalsFollowTheForwardOrder) {
  std::vector<HookPoint> all = AllHookPoints(3);
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_EQ(all[i].Ordinal(3), all[i - 1].Ordinal(3) + 1) << all[i].Name();
  }
  EXPECT_EQ(ParseHookPoint("blocks.2.hook_resid_pre", 12)->BlockLayer(12), 2);
  EXPECT_EQ(ParseHookPoint("ln_final.hook_scale", 12)->BlockLayer(12), 11);
}

}  // namespace
}  // namespace sae::model
