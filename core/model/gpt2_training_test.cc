// The training forward against the engine and finite differences; AdamW, clipping and the
// schedule; the corpus split and batch order.
#include "core/model/gpt2_training.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/data/dataset.h"
#include "core/model/gpt2_model.h"
#include "core/model/training_corpus.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::model {
namespace {

Gpt2Weights ToDouble(Gpt2Weights w) {
  auto cast = [](at::Tensor& t) { t = t.to(at::kDouble); };
  cast(w.wte);
  cast(w.wpe);
  for (Gpt2BlockWeights& b : w.blocks) {
    for (at::Tensor* t :
         {&b.ln_1_weight, &b.ln_1_bias, &b.attn_c_attn_weight, &b.attn_c_attn_bias,
          &b.attn_c_proj_weight, &b.attn_c_proj_bias, &b.ln_2_weight, &b.ln_2_bias,
          &b.mlp_c_fc_weight, &b.mlp_c_fc_bias, &b.mlp_c_proj_weight, &b.mlp_c_proj_bias}) {
      cast(*t);
    }
  }
  cast(w.ln_f_weight);
  cast(w.ln_f_bias);
  if (w.tied_lm_head) {
    w.lm_head = w.wte;
  } else {
    cast(w.lm_head);
  }
  return w;
}

TEST(Gpt2TrainingModelTest, LogitsEqualTheEnginesOnTheSameWeights) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 3);
  ModelOptions options;
  options.processing = Processing::kNone;
  auto engine = Gpt2Model::FromWeights(w, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  at::manual_seed(5);
  at::Tensor tokens = at::randint(0, w.config.vocab_size, {3, 16}, at::kLong);
  ForwardRequest request;
  request.logits = true;
  auto expected = (*engine)->Forward(tokens, request);
  ASSERT_TRUE(expected.ok()) << expected.status();

  Gpt2TrainingModel model(w);
  at::Tensor logits = model.Logits(tokens).detach();
  EXPECT_EQ(logits.sizes(), expected->logits.sizes());
  EXPECT_LT((logits - expected->logits).abs().max().item<double>(), 1e-5);
}

TEST(Gpt2TrainingModelTest, LossIsTheEnginesMeanNextTokenLoss) {
  Gpt2Weights w = support::FullyRandomWeights(support::SmallConfig(), 4);
  ModelOptions options;
  options.processing = Processing::kNone;
  auto engine = Gpt2Model::FromWeights(w, options);
  ASSERT_TRUE(engine.ok());
  at::manual_seed(6);
  at::Tensor tokens = at::randint(0, w.config.vocab_size, {2, 12}, at::kLong);
  ForwardRequest request;
  request.loss = true;
  auto expected = (*engine)->Forward(tokens, request);
  ASSERT_TRUE(expected.ok());
  Gpt2TrainingModel model(w);
  EXPECT_NEAR(model.Loss(tokens).item<double>(), expected->loss.mean().item<double>(), 1e-5);
}

TEST(Gpt2TrainingModelTest, GradientsMatchFiniteDifferencesInFloat64) {
  Gpt2Config c = support::SmallConfig();
  c.n_layer = 2;
  c.n_embd = 16;
  c.n_positions = 8;
  c.vocab_size = 23;
  Gpt2Weights w = ToDouble(support::FullyRandomWeights(c, 7));
  Gpt2TrainingModel model(w);
  at::manual_seed(8);
  at::Tensor tokens = at::randint(0, c.vocab_size, {2, 8}, at::kLong);
  model.Loss(tokens).backward();

  const double h = 1e-6;
  int checked = 0;
  for (auto& [name, p] : model.Parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    at::Tensor flat = p.detach().view({-1});
    at::Tensor grad = p.grad().view({-1});
    // A few coordinates of every parameter, the same ones on every run.
    for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
      const double saved = flat[i].item<double>();
      double plus, minus;
      {
        at::NoGradGuard no_grad;
        flat[i] = saved + h;
        plus = model.Loss(tokens).item<double>();
        flat[i] = saved - h;
        minus = model.Loss(tokens).item<double>();
        flat[i] = saved;
      }
      const double numeric = (plus - minus) / (2 * h);
      const double analytic = grad[i].item<double>();
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::abs(numeric)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int>(model.Parameters().size()));
}

TEST(Gpt2TrainingModelTest, ChunkedLossAndBackwardEqualAutogradsLossAndGradients) {
  Gpt2Config c = support::SmallConfig();
  Gpt2Weights w = ToDouble(support::FullyRandomWeights(c, 9));
  at::manual_seed(10);
  at::Tensor tokens = at::randint(0, c.vocab_size, {3, 16}, at::kLong);
  Gpt2TrainingModel autograd(w), chunked(w);
  at::Tensor loss = autograd.Loss(tokens);
  loss.backward();
  // 45 predictions in chunks of 7: the last chunk is partial.
  const double chunked_loss = chunked.LossAndBackward(tokens, /*chunk_rows=*/7);
  EXPECT_NEAR(chunked_loss, loss.item<double>(), 1e-12);
  EXPECT_NEAR(chunked.LossWithoutGradients(tokens, 7), loss.item<double>(), 1e-12);
  auto expected = autograd.Parameters();
  auto actual = chunked.Parameters();
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_LT((expected[i].second.grad() - actual[i].second.grad()).abs().max().item<double>(),
              1e-12)
        << expected[i].first;
  }
}

TEST(Gpt2TrainingModelTest, TiedUnembeddingIsOneParameter) {
  Gpt2Weights w = RandomGpt2Weights(support::SmallConfig(), 1);
  Gpt2TrainingModel model(w);
  for (auto& [name, p] : model.Parameters()) EXPECT_NE(name, "lm_head.weight");
  EXPECT_TRUE(model.weights().lm_head.is_same(model.weights().wte));
  EXPECT_FALSE(model.weights().wte.is_same(w.wte));  // training does not change the input
}

TEST(AdamWTest, DecaysOnlyMatricesAndEmbeddings) {
  Gpt2TrainingModel model(RandomGpt2Weights(support::SmallConfig(), 1));
  AdamW optimizer(model.Parameters(), {});
  EXPECT_TRUE(optimizer.Decays("wte.weight"));
  EXPECT_TRUE(optimizer.Decays("wpe.weight"));
  EXPECT_TRUE(optimizer.Decays("h.0.attn.c_attn.weight"));
  EXPECT_TRUE(optimizer.Decays("h.2.mlp.c_proj.weight"));
  EXPECT_FALSE(optimizer.Decays("h.0.attn.c_attn.bias"));
  EXPECT_FALSE(optimizer.Decays("h.0.ln_1.weight"));
  EXPECT_FALSE(optimizer.Decays("ln_f.bias"));
}

TEST(AdamWTest, FirstStepMovesEachParameterByTheLearningRateAgainstTheGradientSign) {
  // With bias correction, Adam's first update is lr * g / (|g| + eps) = lr * sign(g).
  at::Tensor matrix = at::ones({2, 2}).requires_grad_();
  at::Tensor vector = at::ones({2}).requires_grad_();
  AdamWOptions options;
  options.weight_decay = 0.5;
  options.max_grad_norm = 0;
  AdamW optimizer({{"m", matrix}, {"v", vector}}, options);
  matrix.mutable_grad() = at::tensor({1.0f, -2.0f, 3.0f, -4.0f}).view({2, 2});
  vector.mutable_grad() = at::tensor({-5.0f, 6.0f});
  optimizer.Step(0.1);
  // The matrix is decayed first: 1 * (1 - 0.1 * 0.5) = 0.95.
  EXPECT_THAT(std::vector<float>(matrix.data_ptr<float>(), matrix.data_ptr<float>() + 4),
              ::testing::Pointwise(::testing::FloatNear(1e-6), {0.85f, 1.05f, 0.85f, 1.05f}));
  EXPECT_THAT(std::vector<float>(vector.data_ptr<float>(), vector.data_ptr<float>() + 2),
              ::testing::Pointwise(::testing::FloatNear(1e-6), {1.1f, 0.9f}));
  EXPECT_FALSE(matrix.grad().defined());
  EXPECT_EQ(optimizer.step(), 1);
}

TEST(AdamWTest, ClipsByTheGlobalNormOfAllGradients) {
  at::Tensor a = at::zeros({2}).requires_grad_();
  at::Tensor b = at::zeros({1}).requires_grad_();
  AdamWOptions options;
  options.max_grad_norm = 1.0;
  AdamW optimizer({{"a", a}, {"b", b}}, options);
  a.mutable_grad() = at::tensor({3.0f, 0.0f});
  b.mutable_grad() = at::tensor({4.0f});
  EXPECT_NEAR(optimizer.Step(0.0), 5.0, 1e-6);
  auto state = optimizer.State();
  // exp_avg = 0.1 * clipped gradient = 0.1 * g / 5.
  EXPECT_EQ(state[0].first, "exp_avg.a");
  EXPECT_NEAR(state[0].second[0].item<double>(), 0.1 * 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(state[1].second[0].item<double>(), 0.1 * 4.0 / 5.0, 1e-6);
}

TEST(LearningRateScheduleTest, WarmsUpLinearlyThenDecaysByCosineToTheMinimum) {
  LearningRateSchedule s{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(s.At(0), 0.1);
  EXPECT_DOUBLE_EQ(s.At(4), 0.5);
  EXPECT_DOUBLE_EQ(s.At(10), 1.0);
  EXPECT_NEAR(s.At(59), 0.55, 0.01);
  EXPECT_DOUBLE_EQ(s.At(109), 0.1);
  EXPECT_GT(s.At(50), s.At(51));
}

TEST(TrainingCorpusTest, HoldsOutTheDatasetsHeldOutDocumentsFromAllOverAndNeverTrainsOnThem) {
  support::TempDir folder;
  // nanoGPT's .bin: raw uint16 ids, documents delimited by 50256; document i is [id id id].
  std::vector<uint16_t> ids;
  for (uint16_t i = 0; i < 400; ++i) {
    const uint16_t id = 1000 + i;
    ids.insert(ids.end(), {id, id, id, 50256});
  }
  TrainingCorpusOptions options;
  options.dataset_path = folder.Write(
      "corpus.bin", std::string(reinterpret_cast<const char*>(ids.data()), 2 * ids.size()));
  options.context_size = 4;  // one document per context: [BOS d d d]
  options.held_out_fraction = 0.1;
  auto corpus = TrainingCorpus::Load(options, nullptr);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->documents(), 400);
  // The held-out documents are those the dataset's rule draws (document i starts at id 4 i).
  data::DatasetOptions dataset_options;
  dataset_options.dataset_path = options.dataset_path;
  dataset_options.held_out_fraction = options.held_out_fraction;
  auto dataset = data::Dataset::Open(dataset_options, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  std::vector<int64_t> expected_held_out, expected_train;
  for (int64_t i = 0; i < 400; ++i) {
    ((*dataset)->IsHeldOut(4 * i) ? expected_held_out : expected_train).push_back(1000 + i);
  }
  auto document_ids = [](const at::Tensor& contexts) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < contexts.size(0); ++i) {
      EXPECT_EQ(contexts[i][0].item<int64_t>(), 50256);
      out.push_back(contexts[i][1].item<int64_t>());
    }
    return out;
  };
  EXPECT_EQ(document_ids(corpus->held_out()), expected_held_out);
  EXPECT_EQ(document_ids(corpus->train()), expected_train);  // none of the held-out ones
  EXPECT_EQ(corpus->held_out_documents(), static_cast<int64_t>(expected_held_out.size()));
  EXPECT_GT(expected_held_out.size(), 25u);
  EXPECT_LT(expected_held_out.size(), 55u);
  // Spread over the file, not its tail: every quarter holds some.
  for (int64_t quarter = 0; quarter < 4; ++quarter) {
    EXPECT_TRUE(std::any_of(expected_held_out.begin(), expected_held_out.end(),
                            [&](int64_t id) { return (id - 1000) / 100 == quarter; }))
        << "quarter " << quarter;
  }
}

TEST(TrainingCorpusTest, ServesEveryContextOncePerEpochInASeededOrder) {
  std::vector<std::vector<int32_t>> documents;
  for (int32_t i = 0; i < 41; ++i) documents.push_back({i, i, i});
  TrainingCorpusOptions options;
  options.context_size = 4;
  auto corpus = TrainingCorpus::FromDocuments(options, documents, {{1, 2, 3}});
  ASSERT_TRUE(corpus.ok());
  const int64_t n = corpus->train().size(0);
  at::Tensor epoch0 = corpus->Contexts(0, n, 7);
  at::Tensor epoch1 = corpus->Contexts(n, n, 7);
  EXPECT_TRUE(at::equal(std::get<0>(epoch0.select(1, 1).sort()),
                        std::get<0>(corpus->train().select(1, 1).sort())));
  EXPECT_FALSE(at::equal(epoch0, epoch1));
  // Any window reads the same contexts, whatever was read before.
  EXPECT_TRUE(at::equal(corpus->Contexts(n - 3, 6, 7),
                        at::cat({epoch0.narrow(0, n - 3, 3), epoch1.narrow(0, 0, 3)})));
  EXPECT_FALSE(at::equal(corpus->Contexts(0, n, 8), epoch0));
}

TEST(TrainingCorpusTest, RefusesACorpusTooSmallForOneContext) {
  TrainingCorpusOptions options;
  options.context_size = 64;
  auto corpus = TrainingCorpus::FromDocuments(options, {{1, 2, 3}}, {{4, 5, 6}});
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(corpus.status().message()), ::testing::HasSubstr("too small"));
}

}  // namespace
}  // namespace sae::model
