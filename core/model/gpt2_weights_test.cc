#include "core/model/gpt2_weights.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::model {
namespace {

using ::testing::HasSubstr;

class Gpt2WeightsTest : public ::testing::Test {
 protected:

  // Writes `w` with each key passed through `rename` (empty result drops the tensor).
  void WriteWith(const Gpt2Weights& w, const std::function<std::string(const std::string&)>& rename,
                 const io::NamedTensors& extra = {}) {
    ASSERT_TRUE(WriteFileAtomically(dir_.string() + "/config.json", w.config.ToJson()).ok());
    io::NamedTensors named;
    for (auto& [k, t] : w.Named()) {
      std::string key = rename(k);
      if (!key.empty()) named.emplace_back(key, t);
    }
    named.insert(named.end(), extra.begin(), extra.end());
    ASSERT_TRUE(io::SaveTensors(dir_.string() + "/model.safetensors", named).ok());
  }

  const support::TempDir temp_{"gpt2_weights_test"};
  const std::filesystem::path dir_ = temp_.path();
};

void ExpectSameWeights(const Gpt2Weights& a, const Gpt2Weights& b) {
  auto na = a.Named();
  auto nb = b.Named();
  ASSERT_EQ(na.size(), nb.size());
  for (size_t i = 0; i < na.size(); ++i) {
    EXPECT_EQ(na[i].first, nb[i].first);
    EXPECT_TRUE(at::equal(na[i].second, nb[i].second)) << na[i].first;
  }
}

TEST_F(Gpt2WeightsTest, RandomInitFollowsGpt2) {
  Gpt2Config c = *Gpt2Preset("gpt2-tiny");
  c.n_layer = 4;
  Gpt2Weights w = RandomGpt2Weights(c, 1);
  EXPECT_EQ(w.wte.sizes(), (std::vector<int64_t>{50257, 64}));
  EXPECT_NEAR(w.wte.std().item<double>(), 0.02, 0.0005);
  EXPECT_NEAR(w.blocks[0].attn_c_attn_weight.std().item<double>(), 0.02, 0.002);
  double proj = 0.02 / std::sqrt(2.0 * 4);
  EXPECT_NEAR(w.blocks[0].mlp_c_proj_weight.std().item<double>(), proj, proj * 0.05);
  EXPECT_NEAR(w.blocks[1].attn_c_proj_weight.std().item<double>(), proj, proj * 0.1);
  EXPECT_EQ(w.blocks[0].attn_c_attn_bias.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(w.blocks[0].ln_1_weight.min().item<float>(), 1.0f);
  EXPECT_TRUE(w.tied_lm_head);
  EXPECT_TRUE(at::equal(RandomGpt2Weights(c, 1).wte, w.wte));
  EXPECT_FALSE(at::equal(RandomGpt2Weights(c, 2).wte, w.wte));
}

TEST_F(Gpt2WeightsTest, SaveThenLoadGivesTheSameTensors) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 3);
  ASSERT_TRUE(SaveGpt2(w, dir_.string()).ok());
  auto loaded = LoadGpt2Weights(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->tied_lm_head);
  ExpectSameWeights(w, *loaded);
  auto file = io::SafetensorsFile::Open(dir_.string() + "/model.safetensors");
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->Find("lm_head.weight"), nullptr);
}

TEST_F(Gpt2WeightsTest, LoadsKeysWithTheTransformerPrefixAndASeparateHead) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 4);
  at::Tensor head = at::randn_like(w.wte);
  WriteWith(w, [](const std::string& k) { return "transformer." + k; }, {{"lm_head.weight", head}});
  auto loaded = LoadGpt2Weights(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->tied_lm_head);
  EXPECT_TRUE(at::equal(loaded->lm_head, head));
  EXPECT_TRUE(at::equal(loaded->wte, w.wte));
}

TEST_F(Gpt2WeightsTest, IgnoresAttentionMaskBuffers) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 5);
  WriteWith(w, [](const std::string& k) { return k; },
            {{"h.0.attn.bias", at::ones({1, 1, 16, 16}).tril()},
             {"h.0.attn.masked_bias", at::tensor({-1e4f})}});
  auto loaded = LoadGpt2Weights(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(w, *loaded);
}

TEST_F(Gpt2WeightsTest, MissingTensorNamesTheKeyAndShape) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 6);
  WriteWith(w, [](const std::string& k) { return k == "h.1.mlp.c_fc.bias" ? "" : k; });
  auto loaded = LoadGpt2Weights(dir_.string());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("'h.1.mlp.c_fc.bias'"));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("[128]"));
}

TEST_F(Gpt2WeightsTest, MisShapedTensorNamesKeyExpectedAndFoundShapes) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 7);
  w.blocks[2].attn_c_attn_weight = w.blocks[2].attn_c_attn_weight.t().contiguous();
  WriteWith(w, [](const std::string& k) { return k; });
  auto loaded = LoadGpt2Weights(dir_.string());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(loaded.status().message());
  EXPECT_THAT(message, HasSubstr("'h.2.attn.c_attn.weight'"));
  EXPECT_THAT(message, HasSubstr("has shape [96,32], expected [32,96]"));
}

TEST_F(Gpt2WeightsTest, ConfigErrorsNameTheField) {
  ASSERT_TRUE(WriteFileAtomically(dir_.string() + "/config.json",
                                  R"({"n_layer": 2, "n_embd": 30, "n_head": 4})")
                  .ok());
  auto loaded = LoadGpt2Weights(dir_.string());
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("n_embd 30 is not divisible by n_head 4"));
  EXPECT_EQ(LoadGpt2Weights((dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(Gpt2WeightsTest, HalfPrecisionWeightsLoadAsFloat32) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 8);
  ASSERT_TRUE(WriteFileAtomically(dir_.string() + "/config.json", w.config.ToJson()).ok());
  io::NamedTensors named;
  for (auto& [k, t] : w.Named()) named.emplace_back(k, t.to(at::kHalf));
  ASSERT_TRUE(io::SaveTensors(dir_.string() + "/model.safetensors", named).ok());
  auto loaded = LoadGpt2Weights(dir_.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->wte.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(loaded->wte, w.wte, 1e-3, 1e-3));
}

}  // namespace
}  // namespace sae::model
