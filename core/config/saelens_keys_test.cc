// run.yaml in SAELens 6's spelling (saelens_keys.h).
#include <string>

#include "core/config/run_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kPaths[] =
    "model_path: /models/gpt2\n"
    "dataset_path: /data/corpus.txt\n";

absl::StatusOr<RunConfig> Read(const std::string& extra) {
  return ParseRunConfig(kPaths + extra, "run.yaml");
}

std::string ErrorOf(const std::string& extra) {
  absl::StatusOr<RunConfig> config = Read(extra);
  EXPECT_FALSE(config.ok()) << extra;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(SaeLens6SpellingTest, ReadsTheSameConfigAsTheSeedsSpelling) {
  absl::StatusOr<RunConfig> seed = Read(
      "hook_point: blocks.2.attn.hook_z\nhook_point_head_index: 3\n"
      "total_training_tokens: 1_000_000\ntrain_batch_size: 2048\nstore_batch_size: 16\n"
      "architecture: topk\nd_in: 64\nd_sae: 512\nk: 16\naux_k_coefficient: 0.5\n"
      "wandb_log_frequency: 5\nrun_name: both\neval_every_n_wandb_logs: 7\n"
      "processing: none\nb_dec_init_method: zeros\n");  // SAELens 6 starts b_dec at zero
  absl::StatusOr<RunConfig> peer = Read(
      "hook_name: blocks.2.attn.hook_z\nhook_head_index: 3\n"
      "training_tokens: 1_000_000\ntrain_batch_size_tokens: 2048\nstore_batch_size_prompts: 16\n"
      "sae:\n  architecture: topk\n  d_in: 64\n  d_sae: 512\n  k: 16\n"
      "  aux_loss_coefficient: 0.5\n  apply_b_dec_to_input: true\n"
      "  normalize_activations: none\n  metadata: {model_name: gpt2}\n"
      "logger:\n  wandb_log_frequency: 5\n  run_name: both\n  eval_every_n_wandb_logs: 7\n"
      "  wandb_id: abc\nmodel_from_pretrained_kwargs: {fold_ln: false, "
      "center_writing_weights: false, center_unembed: false, fold_value_biases: false}\n");
  ASSERT_TRUE(seed.ok()) << seed.status();
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(*peer, *seed);
  EXPECT_EQ(peer->source.spellings.at("k"), "sae.k");
  EXPECT_EQ(KeyLocation(*peer, "k"), "run.yaml:12");
}

TEST(SaeLens6SpellingTest, ReadsJsonAsSaeLensDumpsIt) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(
      "{\"model_path\": \"/m\", \"dataset_path\": \"/d\", \"hook_name\": "
      "\"blocks.1.hook_resid_pre\", \"dtype\": \"float32\", \"sae\": {\"architecture\": "
      "\"standard\", \"d_in\": 64, \"d_sae\": 256, \"dtype\": \"float32\", \"device\": \"cpu\", "
      "\"l1_coefficient\": 5.0, \"lp_norm\": 1.0, \"l1_warm_up_steps\": 0, \"metadata\": "
      "{\"sae_lens_version\": \"6.0.0\"}}, \"seqpos_slice\": [null], \"model_kwargs\": {}, "
      "\"sae_lens_version\": \"6.0.0\", \"model_from_pretrained_kwargs\": {}}",
      "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hook_point, "blocks.1.hook_resid_pre");
  EXPECT_EQ(c->d_sae, 256);
  EXPECT_EQ(c->expansion_factor, std::nullopt);  // sae.d_sae sizes the SAE
  EXPECT_EQ(c->l1_coefficient, 5.0);
  EXPECT_EQ(c->processing, Processing::kTransformerLens);
}

TEST(SaeLens6SpellingTest, SaeLensDefaultModelKwargsSelectTransformerLensWithoutCentring) {
  absl::StatusOr<RunConfig> c =
      Read("model_from_pretrained_kwargs: {center_writing_weights: false}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->processing, Processing::kTransformerLensUncentered);
  c = Read("model_from_pretrained_kwargs: {center_writing_weights: false, fold_ln: true}\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->processing, Processing::kTransformerLensUncentered);
  c = Read("processing: transformer_lens_uncentered\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->processing, Processing::kTransformerLensUncentered);
}

TEST(SaeLens6SpellingTest, RefusesTheSameKeyWrittenBothWaysWithDifferentValues) {
  EXPECT_EQ(ErrorOf("k: 64\narchitecture: topk\nsae:\n  k: 32\n"),
            "run.yaml:6: sae.k: 32 contradicts k: 64 on line 3 (the same key, k, in SAELens 6's "
            "and the seed's spelling); keep one");
  EXPECT_EQ(ErrorOf("hook_name: blocks.1.hook_resid_pre\nhook_point: blocks.2.hook_resid_pre\n"),
            "run.yaml:4: hook_point: blocks.2.hook_resid_pre contradicts hook_name: "
            "blocks.1.hook_resid_pre on line 3 (the same key, hook_point, in SAELens 6's and "
            "the seed's spelling); keep one");
  EXPECT_THAT(ErrorOf("processing: transformer_lens\nmodel_from_pretrained_kwargs:\n"
                      "  fold_ln: false\n  center_writing_weights: false\n"
                      "  center_unembed: false\n  fold_value_biases: false\n"),
              HasSubstr("run.yaml:4: model_from_pretrained_kwargs: none contradicts processing: "
                        "transformer_lens on line 3"));
  EXPECT_EQ(ErrorOf("training_tokens: 100000\ntraining_tokens: 200000\n"),
            "run.yaml:4: training_tokens: given twice, on lines 3 and 4; keep one");
}

TEST(SaeLens6SpellingTest, AcceptsTheSameKeyWrittenBothWaysWithTheSameValue) {
  absl::StatusOr<RunConfig> c =
      Read("d_sae: 2048\nsae:\n  d_sae: 2_048\n  dtype: torch.float32\ndtype: float32\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->d_sae, 2048);
}

TEST(SaeLens6SpellingTest, NamesTheKeyAsWrittenInErrorsAndWarnings) {
  EXPECT_EQ(ErrorOf("sae:\n  k: 0\n"), "run.yaml:4: sae.k: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf("sae:\n  architecture: topk\n"),
            "run.yaml: k: required by architecture topk (line 4); give the number of active "
            "latents per token, for example 32");
  EXPECT_THAT(ErrorOf("sae:\n  not_a_key: 1\n"),
              HasSubstr("run.yaml:4: sae.not_a_key: unknown key;"));
  EXPECT_EQ(ErrorOf("sae: 3\n"),
            "run.yaml:3: sae: expected a mapping (SAELens 6's sae block), got a scalar");
  absl::StatusOr<RunConfig> c = Read("logger:\n  log_to_wandb: true\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->source.warnings.size(), 1u);
  EXPECT_THAT(c->source.warnings[0], HasSubstr("run.yaml:4: logger.log_to_wandb: this service"));
}

TEST(SaeLens6SpellingTest, RefusesSaeLensSettingsThatWouldNotHappenHere) {
  EXPECT_THAT(ErrorOf("sae:\n  normalize_activations: layer_norm\n"),
              HasSubstr("run.yaml:4: sae.normalize_activations: expected one of none, "
                        "expected_average_only_in, constant_norm_rescale, got 'layer_norm'"));
  EXPECT_THAT(ErrorOf("seqpos_slice: [5, -5]\n"),
              HasSubstr("run.yaml:3: seqpos_slice: [5, -5] is not supported"));
  EXPECT_THAT(ErrorOf("model_from_pretrained_kwargs: {fold_ln: false}\n"),
              HasSubstr("run.yaml:3: model_from_pretrained_kwargs: fold_ln false "
                        "with center_writing_weights, center_unembed, fold_value_biases true"));
  EXPECT_THAT(ErrorOf("llm_device: cuda\n"), HasSubstr("run.yaml:3: llm_device: cuda is not"));
  EXPECT_TRUE(Read("lr_decay_steps: 0\nn_restart_cycles: 1\nseqpos_slice: [null]\n"
                   "llm_device: null\nact_store_device: with_model\nexclude_special_tokens: false\n"
                   "sequence_separator_token: bos\nmodel_class_name: HookedTransformer\n")
                  .ok());
}

TEST(SaeLens6SpellingTest, ReadsNormalizationAndTheFinalDecayWithSaeLensMeanings) {
  absl::StatusOr<RunConfig> c =
      Read("sae:\n  normalize_activations: expected_average_only_in\n"
           "n_batches_for_norm_estimate: 7\nlr_decay_steps: 10\n"
           "lr_scheduler_name: cosineannealingwarmrestarts\nn_restart_cycles: 3\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->normalize_activations, NormalizeActivations::kExpectedAverageOnlyIn);
  EXPECT_EQ(c->n_batches_for_norm_estimate, 7);
  EXPECT_EQ(c->lr_decay_steps, 10);
  EXPECT_EQ(c->n_restart_cycles, 3);
  EXPECT_TRUE(c->source.warnings.empty());
  EXPECT_THAT(ErrorOf("lr_scheduler_name: linearwarmupdecay\nlr_decay_steps: 10\n"),
              HasSubstr("lr_decay_steps: 10 cannot follow lr_scheduler_name linearwarmupdecay"));
  EXPECT_THAT(ErrorOf("lr_scheduler_name: cosineannealing\nlr_end: 0\nlr_decay_steps: 10\n"),
              HasSubstr("would decay from lr_end 0 to 0"));
  EXPECT_THAT(ErrorOf("total_training_tokens: 4096\ntrain_batch_size: 1024\nlr_decay_steps: 4\n"),
              HasSubstr("lr_decay_steps: 4 leaves no steps before the decay: the run has 4 steps"));
  absl::StatusOr<RunConfig> ignored = Read("n_restart_cycles: 2\nn_batches_for_norm_estimate: 5\n");
  ASSERT_TRUE(ignored.ok()) << ignored.status();
  EXPECT_THAT(ignored->source.warnings,
              ::testing::ElementsAre(HasSubstr("n_restart_cycles: ignored by lr_scheduler_name"),
                                     HasSubstr("n_batches_for_norm_estimate: ignored")));
}

TEST(SaeLens6SpellingTest, ReadsDecoderInitNormAndApplyBDecToInput) {
  absl::StatusOr<RunConfig> c =
      Read("sae:\n  decoder_init_norm: 0.1\n  apply_b_dec_to_input: false\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->decoder_init_norm, 0.1);
  EXPECT_FALSE(c->apply_b_dec_to_input);
  EXPECT_TRUE(c->source.warnings.empty());
  EXPECT_THAT(ErrorOf("sae:\n  use_matryoshka_aux_loss: true\n"),
              HasSubstr("sae.use_matryoshka_aux_loss: true is not supported"));
}

TEST(SaeLens6SpellingTest, WarnsAboutSaeLensSettingsWithNoEffectHere) {
  absl::StatusOr<RunConfig> c =
      Read("compile_sae: true\nstreaming: true\nverbose: false\nsae_lens_version: 6.1.0\n"
           "output_path: elsewhere\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->source.warnings,
              ElementsAre("run.yaml:3: compile_sae: true has no effect here: there is no "
                          "torch.compile here",
                          HasSubstr("run.yaml:7: output_path: elsewhere has no effect here")));
  // Kept by a second validation, which recomputes the other warnings.
  ASSERT_TRUE(ValidateRunConfig(*c).ok());
  EXPECT_EQ(c->source.warnings.size(), 2u);
  EXPECT_THAT(Read("streaming: true\n")->source.warnings, IsEmpty());
}

TEST(SaeLens6SpellingTest, WarnsThatTheSeedsConstantScheduleDoesNotWarmUp) {
  absl::StatusOr<RunConfig> c = Read("lr_scheduler_name: constant\nlr_warm_up_steps: 100\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->source.warnings,
              ElementsAre(HasSubstr("run.yaml:4: lr_warm_up_steps: ignored by lr_scheduler_name "
                                    "constant (line 3)")));
  EXPECT_THAT(Read("lr_scheduler_name: constantwithwarmup\nlr_warm_up_steps: 100\n")
                  ->source.warnings,
              IsEmpty());
}

TEST(SaeLens6SpellingTest, ReadsAdamsBetas) {
  absl::StatusOr<RunConfig> c = Read("adam_beta1: 0.8\nadam_beta2: 0.99\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->adam_beta1, 0.8);
  EXPECT_EQ(c->adam_beta2, 0.99);
  EXPECT_EQ(ErrorOf("adam_beta2: 1\n"), "run.yaml:3: adam_beta2: must be in [0, 1), got 1");
}

TEST(SaeLens6SpellingTest, SetsKeysByTheirSaeLensNames) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(
      kPaths, "run.yaml", {"sae.architecture=topk", "sae.k=8", "hook_name=blocks.1.hook_mlp_out"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, Architecture::kTopK);
  EXPECT_EQ(c->k, 8);
  EXPECT_EQ(c->hook_point, "blocks.1.hook_mlp_out");
  absl::StatusOr<RunConfig> bad = ParseRunConfig(kPaths, "run.yaml", {"sae.k=0"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--set: sae.k: must be >= 1, got 0");
}

}  // namespace
}  // namespace sae::config
