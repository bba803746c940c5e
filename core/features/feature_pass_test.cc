#include "core/features/feature_pass.h"

#include <vector>

#include "support/random_gpt2.h"
#include "gtest/gtest.h"

namespace sae::features {
namespace {

sparse::SparseAutoencoder RandomSae(sparse::Architecture arch, int64_t d_in, int64_t d_sae,
                                    int k = 0) {
  sparse::SaeOptions o;
  o.architecture = arch;
  o.d_in = d_in;
  o.d_sae = d_sae;
  o.k = k;
  sparse::SparseAutoencoder sae(o, 7);
  sae.params().b_enc.copy_(at::randn({d_sae}) * 0.1);
  return sae;
}

TEST(ParseFeatureListTest, RangesAndErrors) {
  EXPECT_EQ(*ParseFeatureList("3, 1,5-7,5", 10), (std::vector<int64_t>{1, 3, 5, 6, 7}));
  EXPECT_FALSE(ParseFeatureList("10", 10).ok());
  EXPECT_FALSE(ParseFeatureList("a", 10).ok());
  EXPECT_FALSE(ParseFeatureList("5-2", 10).ok());
  EXPECT_FALSE(ParseFeatureList("", 10).ok());
  EXPECT_NE(ParseFeatureList("12", 10).status().message().find("d_sae is 10"), std::string::npos);
}

TEST(EncodeFeatureMajorTest, EqualsTheTransposedEncoder) {
  at::manual_seed(1);
  const at::Tensor x = at::randn({37, 16});
  const at::Tensor subset = at::tensor(std::vector<int64_t>{0, 5, 63}, at::kLong);
  for (auto arch : {sparse::Architecture::kStandard, sparse::Architecture::kTopK}) {
    const sparse::SparseAutoencoder sae = RandomSae(arch, 16, 64, 6);
    const at::Tensor expected = sae.Encode(x).t();
    EXPECT_TRUE(at::allclose(EncodeFeatureMajor(sae, x, at::Tensor()), expected, 1e-5, 1e-5));
    EXPECT_TRUE(at::allclose(EncodeFeatureMajor(sae, x, subset), expected.index_select(0, subset),
                             1e-5, 1e-5));
  }
}

TEST(LogitEffectsTest, MlpAndAttentionOutputsMapThroughTheirOutputWeights) {
  const model::Gpt2Config config = support::SmallConfig();
  const model::Gpt2Weights w = support::FullyRandomWeights(config, 3);
  at::manual_seed(2);
  const at::Tensor d_mlp = at::randn({3, 4 * config.n_embd});
  const at::Tensor d_z = at::randn({3, config.n_embd / config.n_head});
  auto resid = [&](const at::Tensor& d) {
    return *LogitEffects(w, *model::ParseHookPoint("blocks.1.hook_resid_post", 3), -1, d);
  };
  const at::Tensor mlp = *LogitEffects(w, *model::ParseHookPoint("blocks.1.mlp.hook_post", 3), -1, d_mlp);
  EXPECT_TRUE(at::allclose(mlp, resid(at::matmul(d_mlp, w.blocks[1].mlp_c_proj_weight)), 1e-4, 1e-5));
  const int64_t dh = config.n_embd / config.n_head;
  const at::Tensor z = *LogitEffects(w, *model::ParseHookPoint("blocks.2.attn.hook_z", 3), 2, d_z);
  EXPECT_TRUE(at::allclose(
      z, resid(at::matmul(d_z, w.blocks[2].attn_c_proj_weight.narrow(0, 2 * dh, dh))), 1e-4, 1e-5));
  // Centred over the vocabulary; a direction along (1,...,1) has no effect (ln_final centres).
  EXPECT_LT(mlp.sum(1).abs().max().item<float>(), 1e-3);
  EXPECT_LT(resid(at::ones({1, config.n_embd})).abs().max().item<float>(), 1e-5);
  EXPECT_EQ(LogitEffects(w, *model::ParseHookPoint("blocks.0.attn.hook_q", 3), -1, d_z)
                .status()
                .code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ComputeFeatureReportTest, MatchesADenseComputation) {
  const model::Gpt2Config config = support::SmallConfig();
  const model::Gpt2Weights w = support::FullyRandomWeights(config, 4);
  auto model = *model::Gpt2Model::FromWeights(w, {model::Processing::kTransformerLens, at::kFloat});
  eval::SaeForEval sae;
  sae.hook_name = "blocks.1.hook_resid_pre";
  sae.options.d_in = config.n_embd;
  sae.options.d_sae = 48;
  const sparse::SparseAutoencoder init = RandomSae(sparse::Architecture::kStandard, 32, 48);
  sae.params = init.params();
  sae.params.b_enc.sub_(0.3);
  at::manual_seed(9);
  const at::Tensor contexts = at::randint(0, config.vocab_size, {12, 8}, at::kLong);
  FeaturePassOptions options;
  options.collector.top_k = 3;
  options.contexts_per_batch = 5;
  int64_t last_progress = 0;
  options.progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(total, 12);
    EXPECT_GT(done, last_progress);
    last_progress = done;
  };
  const std::vector<int64_t> selected = {1, 7, 40};
  FeatureReport r = *ComputeFeatureReport(*model, w, sae, contexts, selected, options);
  EXPECT_EQ(last_progress, 12);
  ASSERT_EQ(r.stats.size(), 3u);
  EXPECT_EQ(r.tokens, 96);

  model::ForwardRequest request;
  request.capture.push_back(*model::ParseHookPoint(sae.hook_name, 3));
  const at::Tensor x =
      model->Forward(contexts, request)->activations.at(sae.hook_name).reshape({-1, 32});
  const at::Tensor shifted = at::relu(at::addmm(sae.params.b_enc, x - sae.params.b_dec, sae.params.W_enc));
  for (size_t i = 0; i < selected.size(); ++i) {
    const at::Tensor a = shifted.select(1, selected[i]).view({12, 8});
    EXPECT_EQ(r.stats[i].feature, selected[i]);
    EXPECT_EQ(r.stats[i].count, (a > 0).sum().item<int64_t>());
    EXPECT_NEAR(r.stats[i].max, a.max().item<float>(), 1e-5);
    const at::Tensor order = std::get<1>(std::get<0>(a.max(1)).sort(0, true));
    for (size_t k = 0; k < r.stats[i].top.size(); ++k) {
      EXPECT_EQ(r.stats[i].top[k].context, order[k].item<int64_t>());
    }
    ASSERT_EQ(r.neighbours[i].size(), 10u);
    EXPECT_NE(r.neighbours[i][0].first, selected[i]);
    ASSERT_EQ(r.raised[i].size(), 10u);
    EXPECT_GE(r.raised[i][0].value, r.raised[i][9].value);
    EXPECT_LE(r.lowered[i][0].value, r.lowered[i][9].value);
  }
}

}  // namespace
}  // namespace sae::features
