#include "core/eval/evaluation.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/data/context_packing.h"
#include "core/data/token_file_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::eval {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kContexts = 6;
constexpr int64_t kT = 12;

std::unique_ptr<model::Gpt2Model> SmallModel(model::Processing processing) {
  model::ModelOptions options;
  options.processing = processing;
  const model::Gpt2Config config = support::SmallConfig();
  auto m = model::Gpt2Model::FromWeights(support::FullyRandomWeights(config, 7), options);
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(m).value();
}

at::Tensor RandomContexts() {
  at::manual_seed(3);
  return at::randint(0, support::SmallConfig().vocab_size, {kContexts, kT}, at::kLong);
}

// A ReLU SAE that reconstructs exactly: f = [relu(x), relu(-x)], x_hat = relu(x) - relu(-x).
SaeForEval IdentitySae(const std::string& hook, int64_t d_in, int head = -1) {
  SaeForEval sae;
  sae.options.d_in = d_in;
  sae.options.d_sae = 2 * d_in;
  sae.hook_name = hook;
  sae.hook_head_index = head;
  at::Tensor eye = at::eye(d_in, at::kFloat);
  sae.params.W_enc = at::cat({eye, -eye}, 1).contiguous();
  sae.params.b_enc = at::zeros({2 * d_in}, at::kFloat);
  sae.params.W_dec = at::cat({eye, -eye}, 0).contiguous();
  sae.params.b_dec = at::zeros({d_in}, at::kFloat);
  return sae;
}

SaeForEval RandomSae(const std::string& hook, int64_t d_in, int head = -1) {
  at::manual_seed(11);
  SaeForEval sae;
  sae.options.d_in = d_in;
  sae.options.d_sae = 3 * d_in;
  sae.hook_name = hook;
  sae.hook_head_index = head;
  sae.params.W_enc = at::randn({d_in, 3 * d_in}) / std::sqrt(static_cast<double>(d_in));
  sae.params.b_enc = 0.1 * at::randn({3 * d_in});
  sae.params.W_dec = at::randn({3 * d_in, d_in}) / std::sqrt(static_cast<double>(d_in));
  sae.params.b_dec = 0.1 * at::randn({d_in});
  return sae;
}

EvalResults Evaluate(const model::Gpt2Model& m, const SaeForEval& sae, int64_t batches,
                     int64_t batch_size) {
  TensorContextSource source(RandomContexts());
  auto r = EvaluateSae(m, sae, source, {batches, batch_size});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : EvalResults();
}

TEST(EvaluateSaeTest, PerfectReconstructionScoresOneAndZeroKl) {
  for (model::Processing processing :
       {model::Processing::kTransformerLens, model::Processing::kNone}) {
    auto m = SmallModel(processing);
    const int64_t D = m->config().n_embd, dh = m->config().d_head();
    for (const SaeForEval& sae : {IdentitySae("blocks.1.hook_resid_pre", D),
                                  IdentitySae("blocks.2.hook_mlp_out", D),
                                  IdentitySae("blocks.1.attn.hook_z", dh, /*head=*/2),
                                  IdentitySae("blocks.0.attn.hook_z", D)}) {
      SCOPED_TRACE(sae.hook_name + " head " + std::to_string(sae.hook_head_index));
      EvalResults r = Evaluate(*m, sae, 2, 3);
      EXPECT_NEAR(r.ce_loss_score, 1.0, 1e-6);
      EXPECT_EQ(r.ce_loss_with_sae, r.ce_loss_without_sae);
      EXPECT_NEAR(r.kl_div_with_sae, 0.0, 1e-9);
      EXPECT_NEAR(r.kl_div_score, 1.0, 1e-6);
      EXPECT_NE(r.ce_loss_with_ablation, r.ce_loss_without_sae);
      EXPECT_GT(r.kl_div_with_ablation, 0.0);
      EXPECT_NEAR(r.mse, 0.0, 1e-12);
      EXPECT_NEAR(r.explained_variance, 1.0, 1e-9);
      EXPECT_NEAR(r.cossim, 1.0, 1e-9);
      EXPECT_NEAR(r.l2_ratio, 1.0, 1e-9);
      EXPECT_NEAR(r.relative_reconstruction_bias, 1.0, 1e-9);
      EXPECT_NEAR(r.l2_norm_in, r.l2_norm_out, 1e-9);
      EXPECT_EQ(r.sae_tokens, 2 * 3 * kT);
      EXPECT_EQ(r.ce_positions, 2 * 3 * (kT - 1));
      EXPECT_EQ(r.kl_positions, 2 * 3 * kT);
    }
  }
}

TEST(EvaluateSaeTest, AnSaeThatOutputsZeroScoresLikeZeroAblation) {
  auto m = SmallModel(model::Processing::kTransformerLens);
  const int64_t D = m->config().n_embd, dh = m->config().d_head();
  for (SaeForEval sae : {IdentitySae("blocks.1.hook_resid_post", D),
                         IdentitySae("blocks.2.attn.hook_z", dh, /*head=*/1)}) {
    SCOPED_TRACE(sae.hook_name);
    sae.params.W_dec.zero_();
    EvalResults r = Evaluate(*m, sae, 3, 2);
    EXPECT_NEAR(r.ce_loss_score, 0.0, 1e-9);
    EXPECT_NEAR(r.kl_div_score, 0.0, 1e-9);
    EXPECT_NEAR(r.ce_loss_with_sae, r.ce_loss_with_ablation, 1e-9);
    EXPECT_NEAR(r.l2_norm_out, 0.0, 1e-12);
  }
}

TEST(EvalSumsTest, AddedSumsGiveThePooledMetricsNotAMeanOfBatchMeans) {
  EvalSums a, b;
  a.contexts = 1, a.context_size = 4, a.ce_positions = 3, a.ce_clean = 3, a.ce_sae = 6,
  a.ce_ablation = 9;
  b.contexts = 3, b.context_size = 4, b.ce_positions = 9, b.ce_clean = 27, b.ce_sae = 36,
  b.ce_ablation = 45;
  a.tokens = 1, a.l0 = 10, a.squared_error = 1, a.squared_norm_in = 4;
  a.input_sum = at::tensor({2.0, 0.0}, at::kDouble);
  b.tokens = 3, b.l0 = 6, b.squared_error = 3, b.squared_norm_in = 4 + 4 + 4;
  b.input_sum = at::tensor({-2.0, 2.0}, at::kDouble);
  a.firing_counts = at::tensor({1, 0, 0}, at::kLong);
  b.firing_counts = at::tensor({0, 0, 1}, at::kLong);
  EvalSums total = a;
  total.Add(b);
  const EvalResults r = ResultsFromSums(total);
  EXPECT_DOUBLE_EQ(r.ce_loss_without_sae, 30.0 / 12);  // a mean of batch means would say 2
  EXPECT_DOUBLE_EQ(r.ce_loss_with_sae, 42.0 / 12);
  EXPECT_DOUBLE_EQ(r.ce_loss_with_ablation, 54.0 / 12);
  EXPECT_DOUBLE_EQ(r.ce_loss_score, (54.0 - 42.0) / (54.0 - 30.0));
  EXPECT_DOUBLE_EQ(r.l0, 16.0 / 4);
  EXPECT_DOUBLE_EQ(r.mse, 4.0 / (4 * 2));
  // sum ||x - mean||^2 = 16 - ||(0, 2)||^2 / 4 = 15.
  EXPECT_DOUBLE_EQ(r.explained_variance, 1 - 4.0 / 15);
  EXPECT_EQ(r.dead_features, 1);
  EXPECT_EQ(r.dense_features, 2);
  EXPECT_EQ(r.contexts, 4);
}

TEST(EvalResultsFromJsonTest, ReadsBackWhatToJsonWrites) {
  auto m = SmallModel(model::Processing::kTransformerLens);
  const EvalResults r =
      Evaluate(*m, RandomSae("blocks.1.hook_resid_pre", m->config().n_embd), 2, 3);
  auto back = EvalResultsFromJson(nlohmann::json::parse(ToJson(r).dump()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ToJson(*back), ToJson(r));
  EXPECT_EQ(back->sae_tokens, r.sae_tokens);
  nlohmann::json missing = ToJson(r);
  missing["sparsity"].erase("l0");
  auto bad = EvalResultsFromJson(missing);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("sparsity.l0"));
}

// The model's float32 GEMMs round differently for different batch shapes (~1e-8 relative); the
// sums themselves are exact (above), so any split agrees to float32 rounding.
TEST(EvaluateSaeTest, MetricsAreTheSameForAnySplitIntoBatches) {
  auto m = SmallModel(model::Processing::kNone);
  const int64_t D = m->config().n_embd, dh = m->config().d_head();
  for (const SaeForEval& sae :
       {RandomSae("blocks.1.hook_resid_pre", D), RandomSae("blocks.0.attn.hook_z", dh, 3)}) {
    SCOPED_TRACE(sae.hook_name);
    const EvalResults whole = Evaluate(*m, sae, 1, kContexts);
    for (auto [batches, size] : {std::pair<int64_t, int64_t>{2, 3}, {3, 2}, {6, 1}}) {
      SCOPED_TRACE(batches);
      const EvalResults split = Evaluate(*m, sae, batches, size);
      // KLs are small: float32 noise is absolute there. Scores are ratios of differences of
      // these (a one-head ablation barely moves the CE), so they are checked through them.
      auto same = [](double a, double b, double abs_tol = 1e-9) {
        EXPECT_NEAR(a, b, 1e-5 * std::abs(b) + abs_tol);
      };
      same(split.ce_loss_without_sae, whole.ce_loss_without_sae);
      same(split.ce_loss_with_sae, whole.ce_loss_with_sae);
      same(split.ce_loss_with_ablation, whole.ce_loss_with_ablation);
      same(split.kl_div_with_sae, whole.kl_div_with_sae, 1e-7);
      same(split.kl_div_with_ablation, whole.kl_div_with_ablation, 1e-7);
      same(split.mse, whole.mse);
      same(split.explained_variance, whole.explained_variance);
      same(split.cossim, whole.cossim);
      same(split.l2_ratio, whole.l2_ratio);
      same(split.relative_reconstruction_bias, whole.relative_reconstruction_bias);
      same(split.l0, whole.l0);
      same(split.l1, whole.l1);
      EXPECT_EQ(split.dead_features, whole.dead_features);
      EXPECT_EQ(split.dense_features, whole.dense_features);
      EXPECT_EQ(split.sae_tokens, whole.sae_tokens);
    }
    // A random SAE is neither perfect nor useless, and fires a fraction of its latents.
    EXPECT_GT(whole.l0, 0.0);
    EXPECT_LT(whole.l0, static_cast<double>(sae.options.d_sae));
    EXPECT_NE(whole.ce_loss_with_sae, whole.ce_loss_without_sae);
  }
}

TEST(EvaluateSaeTest, TopKFiresAtMostKLatentsPerToken) {
  auto m = SmallModel(model::Processing::kTransformerLens);
  SaeForEval sae = RandomSae("blocks.1.hook_resid_mid", m->config().n_embd);
  sae.options.architecture = sparse::Architecture::kTopK;
  sae.options.k = 5;
  const EvalResults r = Evaluate(*m, sae, 2, 3);
  EXPECT_GT(r.l0, 0.0);
  EXPECT_LE(r.l0, 5.0);
  EXPECT_LE(r.dense_features, sae.options.d_sae);
}

TEST(EvaluateSaeTest, RunningOutOfContextsIsOutOfRange) {
  auto m = SmallModel(model::Processing::kNone);
  TensorContextSource source(RandomContexts());
  auto r = EvaluateSae(*m, IdentitySae("blocks.0.hook_resid_pre", m->config().n_embd), source,
                       {4, 2});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
}

TEST(CheckSaeFitsModelTest, ErrorsNameTheSaeAndTheModel) {
  const model::Gpt2Config config = support::SmallConfig();
  auto wrong_width = CheckSaeFitsModel(IdentitySae("blocks.1.hook_resid_pre", 33), config, "M");
  EXPECT_EQ(wrong_width.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong_width.status().message(), HasSubstr("d_in 33"));
  EXPECT_THAT(wrong_width.status().message(), HasSubstr("width 32"));
  EXPECT_THAT(wrong_width.status().message(), HasSubstr("model M"));

  auto missing = CheckSaeFitsModel(IdentitySae("blocks.7.hook_resid_pre", 32), config, "M");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(missing.status().message(), HasSubstr("blocks.7.hook_resid_pre"));
  EXPECT_THAT(missing.status().message(), HasSubstr("3 layers"));

  auto head_on_resid = CheckSaeFitsModel(IdentitySae("blocks.1.hook_resid_pre", 8, 1), config, "M");
  EXPECT_EQ(head_on_resid.status().code(), absl::StatusCode::kInvalidArgument);
  auto no_such_head = CheckSaeFitsModel(IdentitySae("blocks.1.attn.hook_z", 8, 4), config, "M");
  EXPECT_EQ(no_such_head.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(CheckSaeFitsModel(IdentitySae("blocks.1.attn.hook_z", 8, 3), config, "M").ok());
  EXPECT_TRUE(CheckSaeFitsModel(IdentitySae("blocks.1.attn.hook_z", 32), config, "M").ok());
}

TEST(ReadFirstContextsTest, PacksTheDatasetAsTrainingDoesAndRefusesTooFewContexts) {
  support::TempDir folder;
  constexpr int32_t kEot = 50256;
  std::vector<std::vector<int32_t>> documents = {
      {1, 2, 3, 4, 5}, {6, 7}, {8, 9, 10, 11, 12, 13, 14}, {15, 16, 17}};
  std::vector<int32_t> stream;
  for (const auto& d : documents) {
    stream.insert(stream.end(), d.begin(), d.end());
    stream.push_back(kEot);
  }
  const std::string path =
      folder.Write("stream.npy", *data::EncodeNpy(stream, data::NpyElement::kInt32));
  data::DatasetOptions options;
  options.dataset_path = path;
  options.context_size = 4;
  auto dataset = data::Dataset::Open(options, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();

  data::PackingOptions packing;
  packing.context_size = 4;
  const std::vector<std::vector<int32_t>> expected = data::PackDocuments(packing, documents);
  ASSERT_GE(expected.size(), 4u);
  auto contexts = ReadFirstContexts(*dataset, 4);
  ASSERT_TRUE(contexts.ok()) << contexts.status();
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t t = 0; t < 4; ++t) {
      EXPECT_EQ((*contexts)[i][t].item<int64_t>(), expected[i][t]) << i << "," << t;
    }
  }
  auto too_many = ReadFirstContexts(*dataset, 20);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kOutOfRange) << too_many.status();
  const std::string message(too_many.status().message());
  EXPECT_THAT(message, HasSubstr("fewer than the 20 asked"));
  // PackDocuments drops the incomplete [B 16 17]; the shard completes it with the BOS of the
  // next pass's first document (which is where that document starts over, so no data token
  // repeats), as training serves it: 7 contexts.
  EXPECT_EQ(expected.size(), 6u);
  EXPECT_THAT(message, HasSubstr("holds 7 contexts"));
  auto seven = ReadFirstContexts(*dataset, 7);
  ASSERT_TRUE(seven.ok()) << seven.status();
  EXPECT_EQ((*seven)[6][3].item<int64_t>(), kEot);
  EXPECT_EQ(ReadFirstContexts(*dataset, 8).status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace sae::eval
