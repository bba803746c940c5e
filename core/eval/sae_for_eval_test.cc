#include "core/eval/sae_for_eval.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::eval {
namespace {

using ::testing::HasSubstr;

io::SaeLensSae Sae(nlohmann::json cfg) {
  io::SaeLensSae sae;
  at::manual_seed(5);
  sae.W_enc = at::randn({4, 6});
  sae.b_enc = at::randn({6});
  sae.W_dec = at::randn({6, 4});
  sae.b_dec = at::randn({4});
  sae.cfg = std::move(cfg);
  return sae;
}

TEST(SaeForEvalFromSaeLensTest, ReadsFlatAndNestedCfgJson) {
  io::SaeLensSae flat = Sae({{"d_in", 4},
                             {"d_sae", 6},
                             {"hook_name", "blocks.0.attn.hook_z"},
                             {"hook_head_index", 2},
                             {"context_size", 64},
                             {"prepend_bos", false},
                             {"model_from_pretrained_kwargs", {{"fold_ln", false},
                                                               {"center_writing_weights", false},
                                                               {"center_unembed", false},
                                                               {"fold_value_biases", false}}}});
  auto a = SaeForEvalFromSaeLens(flat, "dir");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->hook_name, "blocks.0.attn.hook_z");
  EXPECT_EQ(a->hook_head_index, 2);
  SaeTrainingSetup setup = TrainingSetupFromSaeLens(flat);
  EXPECT_EQ(setup.context_size, 64);
  EXPECT_FALSE(setup.prepend_bos);
  EXPECT_EQ(setup.processing, model::Processing::kNone);

  io::SaeLensSae nested = Sae({{"d_in", 4},
                               {"d_sae", 6},
                               {"architecture", "standard"},
                               {"metadata",
                                {{"hook_name", "blocks.3.hook_resid_pre"},
                                 {"hook_head_index", nullptr},
                                 {"context_size", 32},
                                 {"prepend_bos", true},
                                 {"model_from_pretrained_kwargs", nlohmann::json::object()}}}});
  auto b = SaeForEvalFromSaeLens(nested, "dir");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->hook_name, "blocks.3.hook_resid_pre");
  EXPECT_EQ(b->hook_head_index, -1);
  setup = TrainingSetupFromSaeLens(nested);
  EXPECT_EQ(setup.context_size, 32);
  EXPECT_EQ(setup.processing, model::Processing::kTransformerLens);

  nested.cfg["metadata"]["model_from_pretrained_kwargs"] = {{"fold_ln", false}};
  EXPECT_EQ(TrainingSetupFromSaeLens(nested).processing, std::nullopt);
}

TEST(SaeForEvalFromSaeLensTest, FoldsAnUnappliedDecoderBiasIntoTheEncoderBias) {
  io::SaeLensSae sae = Sae({{"d_in", 4},
                            {"d_sae", 6},
                            {"hook_name", "blocks.0.hook_resid_pre"},
                            {"apply_b_dec_to_input", false}});
  auto e = SaeForEvalFromSaeLens(sae, "dir");
  ASSERT_TRUE(e.ok()) << e.status();
  sparse::SparseAutoencoder ours(e->options, e->params);
  at::Tensor x = at::randn({5, 4});
  // SAELens without apply_b_dec_to_input: relu(x W_enc + b_enc) W_dec + b_dec.
  at::Tensor expected = at::relu(at::addmm(sae.b_enc, x, sae.W_enc)).mm(sae.W_dec) + sae.b_dec;
  EXPECT_TRUE(at::allclose(ours.Reconstruct(x), expected, 1e-5, 1e-5));
}

TEST(SaeForEvalFromSaeLensTest, RefusesWhatItCannotEvaluate) {
  auto no_hook = SaeForEvalFromSaeLens(Sae({{"d_in", 4}, {"d_sae", 6}}), "dir");
  EXPECT_EQ(no_hook.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_hook.status().message(), HasSubstr("dir/cfg.json"));
  // io::ReadSaeLens fills the metadata from cfg.json; here it is set as the reader would.
  io::SaeLensSae unfolded = Sae({{"d_in", 4},
                                 {"d_sae", 6},
                                 {"hook_name", "blocks.0.hook_resid_pre"},
                                 {"normalize_activations", "expected_average_only_in"}});
  unfolded.metadata.normalize_activations = "expected_average_only_in";
  auto scaled = SaeForEvalFromSaeLens(unfolded, "dir");
  EXPECT_EQ(scaled.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(scaled.status().message(), HasSubstr("dir/cfg.json: normalize_activations"));
}

TEST(HookSiteTest, ReplacesAndAblatesOnlyTheSaesHead) {
  model::HookPoint z{model::HookKind::kZ, 0};
  at::Tensor value = at::randn({2, 3, 4, 5});
  HookSite one_head(z, 1);
  at::Tensor x = one_head.SaeInput(value);
  EXPECT_EQ(x.sizes(), at::IntArrayRef({6, 5}));
  EXPECT_TRUE(at::equal(x.view({2, 3, 5}), value.select(2, 1)));
  at::Tensor replaced = one_head.Replace(value, at::ones({6, 5}));
  EXPECT_TRUE(at::equal(replaced.select(2, 1), at::ones({2, 3, 5})));
  EXPECT_TRUE(at::equal(replaced.select(2, 0), value.select(2, 0)));
  at::Tensor ablated = one_head.Ablate(value);
  EXPECT_TRUE(at::equal(ablated.select(2, 1), at::zeros({2, 3, 5})));
  EXPECT_TRUE(at::equal(ablated.select(2, 3), value.select(2, 3)));

  HookSite all_heads(z, -1);
  EXPECT_EQ(all_heads.SaeInput(value).sizes(), at::IntArrayRef({6, 20}));
  EXPECT_TRUE(at::equal(all_heads.Replace(value, all_heads.SaeInput(value)), value));
  EXPECT_TRUE(at::equal(all_heads.Ablate(value), at::zeros_like(value)));
}

}  // namespace
}  // namespace sae::eval
