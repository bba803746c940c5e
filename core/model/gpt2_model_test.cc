// Invariants of the forward pass (the reference comparison against an independent PyTorch
// GPT-2 lives in tests/reference/).
#include "core/model/gpt2_model.h"

#include <ATen/record_function.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "support/random_gpt2.h"

namespace sae::model {
namespace {

using ::testing::HasSubstr;

class Gpt2ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = support::FullyRandomWeights(support::SmallConfig(), 11);
    raw_ = *Gpt2Model::FromWeights(weights_, {Processing::kNone, at::kFloat});
    tl_ = *Gpt2Model::FromWeights(weights_, {Processing::kTransformerLens, at::kFloat});
    at::manual_seed(5);
    tokens_ = at::randint(0, 97, {3, 12}, at::kLong);
  }

  static HookPoint H(const std::string& name) { return *ParseHookPoint(name, 3); }

  ForwardResult Run(const Gpt2Model& m, const at::Tensor& tokens, ForwardRequest request) {
    auto r = m.Forward(tokens, request);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? std::move(r).value() : ForwardResult{};
  }

  ForwardRequest CaptureAll(bool logits) {
    ForwardRequest req;
    req.capture = AllHookPoints(3);
    req.logits = logits;
    return req;
  }

  Gpt2Weights weights_;
  std::unique_ptr<Gpt2Model> raw_, tl_;
  at::Tensor tokens_;
};

TEST_F(Gpt2ModelTest, EveryHookHasItsTransformerLensShape) {
  ForwardResult r = Run(*raw_, tokens_, CaptureAll(true));
  ModelDims dims = weights_.config.dims();
  for (const HookPoint& h : AllHookPoints(3)) {
    ASSERT_TRUE(r.activations.count(h.Name())) << h.Name();
    EXPECT_EQ(r.activations[h.Name()].sizes(), at::IntArrayRef(h.Shape(dims, 3, 12))) << h.Name();
  }
  EXPECT_EQ(r.logits.sizes(), (std::vector<int64_t>{3, 12, 97}));
}

TEST_F(Gpt2ModelTest, ChangingATokenChangesNothingBeforeIt) {
  at::Tensor changed = tokens_.clone();
  changed[0][7] = (changed[0][7].item<int64_t>() + 1) % 97;
  ForwardResult a = Run(*tl_, tokens_, CaptureAll(true));
  ForwardResult b = Run(*tl_, changed, CaptureAll(true));
  at::Tensor before = a.logits[0].narrow(0, 0, 7), before_b = b.logits[0].narrow(0, 0, 7);
  EXPECT_TRUE(at::allclose(before, before_b, 1e-5, 1e-5));
  EXPECT_FALSE(at::allclose(a.logits[0][7], b.logits[0][7], 1e-3, 1e-3));
  for (const char* name :
       {"blocks.2.hook_resid_post", "blocks.1.attn.hook_z", "blocks.0.mlp.hook_post"}) {
    EXPECT_TRUE(at::allclose(a.activations[name][0].narrow(0, 0, 7),
                             b.activations[name][0].narrow(0, 0, 7), 1e-5, 1e-5))
        << name;
  }
}

TEST_F(Gpt2ModelTest, StoppingAtALayerGivesTheSameActivationsAsTheFullRun) {
  ForwardResult everything = Run(*tl_, tokens_, CaptureAll(true));
  for (const char* name : {"blocks.1.hook_resid_pre", "blocks.0.ln1.hook_normalized",
                           "blocks.1.attn.hook_pattern", "blocks.2.hook_mlp_out", "hook_embed"}) {
    ForwardRequest req;
    req.capture = {H(name)};
    ForwardResult stopped = Run(*tl_, tokens_, req);
    ASSERT_EQ(stopped.activations.size(), 1u);
    req.logits = true;  // runs every layer
    ForwardResult full = Run(*tl_, tokens_, req);
    EXPECT_TRUE(at::equal(stopped.activations[name], full.activations[name])) << name;
    // Capturing every hook computes LayerNorms unfused: equal up to rounding.
    EXPECT_TRUE(at::allclose(stopped.activations[name], everything.activations[name], 1e-5, 1e-6))
        << name;
  }
}

// Counts the matrix products ATen runs on this thread while it lives (through RecordFunction,
// the hook torch's profiler uses): how a test sees which blocks a forward computed.
class MatrixProductCounter {
 public:
  MatrixProductCounter() {
    count_ = 0;
    handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&MatrixProductCounter::OnStart)
                                             .scopes({at::RecordScope::FUNCTION}));
  }
  ~MatrixProductCounter() { at::removeCallback(handle_); }
  MatrixProductCounter(const MatrixProductCounter&) = delete;
  MatrixProductCounter& operator=(const MatrixProductCounter&) = delete;

  int64_t count() const { return count_; }

 private:
  static std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
    const std::string name = fn.name();
    if (name == "aten::mm" || name == "aten::addmm" || name == "aten::bmm" ||
        name == "aten::baddbmm" || name == "aten::matmul" || name == "aten::linear") {
      ++count_;
    }
    return nullptr;
  }

  static thread_local int64_t count_;
  at::CallbackHandle handle_;
};

thread_local int64_t MatrixProductCounter::count_ = 0;

TEST_F(Gpt2ModelTest, StoppingEarlySkipsLaterHooks) {
  // Matrix products run by a forward that stops after the residual stream of block `layer`,
  // which an intervention there (the last hook that forward needs) sees exactly once.
  auto products_until = [&](int layer) -> int64_t {
    const std::string hook = "blocks." + std::to_string(layer) + ".hook_resid_post";
    int calls = 0;
    ForwardRequest req;
    req.capture = {H(hook)};
    req.interventions.emplace_back(H(hook), [&calls](const at::Tensor& value) {
      ++calls;
      return value;
    });
    MatrixProductCounter counter;
    ForwardResult r = Run(*tl_, tokens_, req);
    EXPECT_EQ(calls, 1) << hook;
    EXPECT_EQ(r.activations.size(), 1u) << hook;
    EXPECT_FALSE(r.logits.defined()) << hook;
    return counter.count();
  };
  const int64_t block0 = products_until(0);
  const int64_t block1 = products_until(1);
  const int64_t block2 = products_until(2);
  ASSERT_GT(block0, 0) << "RecordFunction saw no matrix product";
  // Each further block costs the same products (attention and MLP), so a forward stopped
  // after block 0 ran none of block 1's or 2's.
  EXPECT_GT(block1 - block0, 0);
  EXPECT_EQ(block2 - block1, block1 - block0);
  // And one that needs the logits runs more still (the unembedding).
  int64_t full = 0;
  {
    MatrixProductCounter counter;
    ForwardRequest req;
    req.logits = true;
    Run(*tl_, tokens_, req);
    full = counter.count();
  }
  EXPECT_GT(full, block2);
  std::printf("matrix products: %lld to block 0, %lld per further block, %lld with logits\n",
              static_cast<long long>(block0), static_cast<long long>(block1 - block0),
              static_cast<long long>(full));
}

TEST_F(Gpt2ModelTest, ABatchEqualsItsRowsRunAlone) {
  ForwardResult batch = Run(*tl_, tokens_, CaptureAll(true));
  for (int64_t i = 0; i < 3; ++i) {
    ForwardResult row = Run(*tl_, tokens_.narrow(0, i, 1), CaptureAll(true));
    EXPECT_TRUE(at::allclose(row.logits[0], batch.logits[i], 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose(row.activations["blocks.2.hook_resid_post"][0],
                             batch.activations["blocks.2.hook_resid_post"][i], 1e-5, 1e-5));
  }
}

TEST_F(Gpt2ModelTest, SplicingAHookWithItsOwnValueLeavesLogitsUnchanged) {
  ForwardResult clean = Run(*tl_, tokens_, CaptureAll(true));
  for (const char* name : {"blocks.1.hook_resid_pre", "blocks.0.attn.hook_z",
                           "blocks.2.mlp.hook_post", "blocks.1.attn.hook_pattern"}) {
    ForwardRequest req;
    req.logits = true;
    req.interventions.emplace_back(H(name), Splice(clean.activations[name].clone()));
    ForwardResult spliced = Run(*tl_, tokens_, req);
    EXPECT_TRUE(at::allclose(spliced.logits, clean.logits, 1e-5, 1e-5)) << name;
  }
}

TEST_F(Gpt2ModelTest, ZeroAblationChangesLaterValuesOnly) {
  ForwardResult clean = Run(*tl_, tokens_, CaptureAll(true));
  ForwardRequest req = CaptureAll(true);
  req.interventions.emplace_back(H("blocks.1.hook_mlp_out"), ZeroAblate());
  ForwardResult ablated = Run(*tl_, tokens_, req);
  EXPECT_EQ(ablated.activations["blocks.1.hook_mlp_out"].abs().max().item<float>(), 0.0f);
  EXPECT_TRUE(at::equal(ablated.activations["blocks.1.hook_resid_mid"],
                        clean.activations["blocks.1.hook_resid_mid"]));
  EXPECT_TRUE(at::allclose(ablated.activations["blocks.1.hook_resid_post"],
                           clean.activations["blocks.1.hook_resid_mid"]));
  EXPECT_FALSE(at::allclose(ablated.logits, clean.logits, 1e-3, 1e-3));
}

TEST_F(Gpt2ModelTest, TransformerLensProcessingCentresTheResidualStream) {
  ForwardResult raw = Run(*raw_, tokens_, CaptureAll(true));
  ForwardResult tl = Run(*tl_, tokens_, CaptureAll(true));
  for (const char* name :
       {"hook_embed", "hook_pos_embed", "blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid",
        "blocks.2.hook_resid_post", "blocks.1.hook_attn_out", "blocks.2.hook_mlp_out"}) {
    at::Tensor r = raw.activations[name];
    at::Tensor expected = r - r.mean(-1, true);
    EXPECT_TRUE(at::allclose(tl.activations[name], expected, 1e-4, 1e-5)) << name;
    EXPECT_LT(tl.activations[name].mean(-1).abs().max().item<float>(), 1e-5) << name;
  }
}

TEST_F(Gpt2ModelTest, TransformerLensProcessingKeepsReadingHooksAndLogProbs) {
  ForwardResult raw = Run(*raw_, tokens_, CaptureAll(true));
  ForwardResult tl = Run(*tl_, tokens_, CaptureAll(true));
  for (const char* name :
       {"blocks.1.attn.hook_q", "blocks.1.attn.hook_k", "blocks.2.mlp.hook_pre",
        "blocks.2.mlp.hook_post", "blocks.0.ln1.hook_normalized", "blocks.0.ln2.hook_scale",
        "blocks.1.attn.hook_pattern", "ln_final.hook_normalized"}) {
    EXPECT_TRUE(at::allclose(tl.activations[name], raw.activations[name], 1e-4, 1e-4)) << name;
  }
  EXPECT_TRUE(
      at::allclose(at::log_softmax(tl.logits, -1), at::log_softmax(raw.logits, -1), 1e-4, 1e-4));
  // hook_v and hook_z lose b_V (after fold_ln, b_V includes ln_1's bias read by W_V).
  const int64_t D = 32;
  for (int l = 0; l < 3; ++l) {
    const Gpt2BlockWeights& b = weights_.blocks[l];
    at::Tensor w_v = b.attn_c_attn_weight.narrow(1, 2 * D, D);
    at::Tensor b_v =
        (b.attn_c_attn_bias.narrow(0, 2 * D, D) + at::matmul(b.ln_1_bias, w_v)).view({4, 8});
    for (const char* kind : {"attn.hook_v", "attn.hook_z"}) {
      std::string name = "blocks." + std::to_string(l) + "." + kind;
      EXPECT_TRUE(at::allclose(tl.activations[name], raw.activations[name] - b_v, 1e-4, 1e-4))
          << name;
    }
  }
}

// SAELens 6's default model_from_pretrained_kwargs ({center_writing_weights: false}): the
// residual stream keeps Hugging Face's values (fold_ln and fold_value_biases move weights
// between maps without changing what is written), log-probabilities are unchanged, and hook_v
// and hook_z still lose b_V.
TEST_F(Gpt2ModelTest, TransformerLensProcessingWithoutCentringKeepsTheResidualStream) {
  auto uncentered =
      *Gpt2Model::FromWeights(weights_, {Processing::kTransformerLensUncentered, at::kFloat});
  ForwardResult raw = Run(*raw_, tokens_, CaptureAll(true));
  ForwardResult tl = Run(*tl_, tokens_, CaptureAll(true));
  ForwardResult un = Run(*uncentered, tokens_, CaptureAll(true));
  for (const char* name :
       {"hook_embed", "blocks.0.hook_resid_pre", "blocks.1.hook_resid_mid",
        "blocks.2.hook_resid_post", "blocks.1.hook_attn_out", "blocks.2.hook_mlp_out",
        "blocks.2.mlp.hook_post", "blocks.1.attn.hook_pattern"}) {
    EXPECT_TRUE(at::allclose(un.activations[name], raw.activations[name], 1e-4, 1e-4)) << name;
  }
  // Not centred: the residual stream's mean over d_model is the raw model's, not zero.
  at::Tensor raw_mean = raw.activations["blocks.2.hook_resid_post"].mean(-1);
  ASSERT_GT(raw_mean.abs().max().item<float>(), 1e-2);
  EXPECT_TRUE(at::allclose(un.activations["blocks.2.hook_resid_post"].mean(-1), raw_mean, 1e-4,
                           1e-4));
  EXPECT_TRUE(
      at::allclose(at::log_softmax(un.logits, -1), at::log_softmax(raw.logits, -1), 1e-4, 1e-4));
  for (const char* name : {"blocks.0.attn.hook_v", "blocks.2.attn.hook_z"}) {
    EXPECT_TRUE(at::allclose(un.activations[name], tl.activations[name], 1e-4, 1e-4)) << name;
    EXPECT_FALSE(at::allclose(un.activations[name], raw.activations[name], 1e-3, 1e-3)) << name;
  }
}

TEST_F(Gpt2ModelTest, LossIsNextTokenCrossEntropy) {
  ForwardRequest req;
  req.logits = true;
  req.loss = true;
  ForwardResult r = Run(*raw_, tokens_, req);
  ASSERT_EQ(r.loss.sizes(), (std::vector<int64_t>{3, 11}));
  at::Tensor lp = at::log_softmax(r.logits, -1);
  EXPECT_NEAR(r.loss[1][4].item<float>(), -lp[1][4][tokens_[1][5].item<int64_t>()].item<float>(),
              1e-5);
  ForwardResult tl = Run(*tl_, tokens_, req);
  EXPECT_TRUE(at::allclose(tl.loss, r.loss, 1e-4, 1e-4));
}

TEST_F(Gpt2ModelTest, Bfloat16StaysCloseToFloat32) {
  auto bf16 = *Gpt2Model::FromWeights(weights_, {Processing::kTransformerLens, at::kBFloat16});
  ForwardResult a = Run(*tl_, tokens_, CaptureAll(true));
  ForwardResult b = Run(*bf16, tokens_, CaptureAll(true));
  EXPECT_EQ(b.activations["blocks.2.hook_resid_post"].scalar_type(), at::kBFloat16);
  // bfloat16 keeps 8 significant bits: relative error of a few percent after three blocks.
  for (const char* name : {"blocks.0.hook_resid_post", "blocks.2.hook_resid_post"}) {
    at::Tensor x = a.activations[name], y = b.activations[name].to(at::kFloat);
    double rel = ((x - y).norm() / x.norm()).item<double>();
    EXPECT_LT(rel, 0.03) << name;
  }
  double logit_rel = ((a.logits - b.logits).norm() / a.logits.norm()).item<double>();
  EXPECT_LT(logit_rel, 0.05);
}

TEST_F(Gpt2ModelTest, BadInputsAreClearErrors) {
  ForwardRequest req = CaptureAll(true);
  EXPECT_THAT(std::string(tl_->Forward(at::full({1, 3}, 97, at::kLong), req).status().message()),
              HasSubstr("token id 97 is outside the vocabulary [0, 97)"));
  EXPECT_THAT(std::string(tl_->Forward(at::zeros({1, 17}, at::kLong), req).status().message()),
              HasSubstr("exceeds the model's n_ctx of 16"));
  EXPECT_THAT(std::string(tl_->Forward(at::zeros({4}, at::kLong), req).status().message()),
              HasSubstr("2-D integer tensor"));
  ForwardRequest bad;
  bad.capture = {H("blocks.2.hook_resid_post")};
  bad.interventions.emplace_back(H("blocks.0.hook_resid_pre"), [](const at::Tensor&) {
    return at::zeros({2, 2});
  });
  EXPECT_THAT(
      std::string(tl_->Forward(tokens_, bad).status().message()),
      HasSubstr(
          "intervention at blocks.0.hook_resid_pre returned shape [2,2], expected [3,12,32]"));
}

}  // namespace
}  // namespace sae::model
