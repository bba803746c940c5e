#include <cstdio>
#include <fstream>
#include <string>

#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// The two keys every model-running config must give; everything else defaults.
constexpr char kMinimal[] =
    "model_path: /models/gpt2\n"
    "dataset_path: /data/corpus.txt\n";

RunConfig Parse(const std::string& extra) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(kMinimal + extra, "run.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : RunConfig{};
}

// The error message of parsing kMinimal + `extra` (whose first line is line 3).
std::string ErrorOf(const std::string& extra) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(kMinimal + extra, "run.yaml");
  EXPECT_FALSE(config.ok()) << "parsed:\n" << kMinimal << extra;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

TEST(RunConfigDefaultsTest, EqualTheSeedsLanguageModelSAERunnerConfig) {
  RunConfig c = Parse("");
  EXPECT_EQ(c.model_name, "gpt2-small");
  EXPECT_EQ(c.hook_point, "blocks.0.hook_mlp_out");
  EXPECT_EQ(c.hook_point_layer, std::nullopt);  // derived: 0 for the default hook
  EXPECT_EQ(c.hook_point_head_index, std::nullopt);
  EXPECT_EQ(c.is_dataset_tokenized, std::nullopt);
  EXPECT_EQ(c.context_size, 128);
  EXPECT_FALSE(c.use_cached_activations);
  EXPECT_EQ(c.cached_activations_path, std::nullopt);
  EXPECT_EQ(c.d_in, std::nullopt);
  EXPECT_EQ(c.expansion_factor, 4);
  EXPECT_EQ(c.d_sae, std::nullopt);
  EXPECT_EQ(c.b_dec_init_method, BDecInitMethod::kGeometricMedian);
  EXPECT_EQ(c.from_pretrained_path, std::nullopt);
  EXPECT_EQ(c.l1_coefficient, 1e-3);
  EXPECT_EQ(c.lr, 3e-4);
  EXPECT_EQ(c.lr_scheduler_name, LrScheduler::kConstantWithWarmup);
  EXPECT_EQ(c.lr_warm_up_steps, 500);
  EXPECT_EQ(EffectiveLrEnd(c), 3e-4 / 10);
  EXPECT_EQ(c.train_batch_size, 4096);
  EXPECT_EQ(c.n_batches_in_buffer, 20);
  EXPECT_EQ(c.total_training_tokens, 2'000'000);
  EXPECT_EQ(c.store_batch_size, 32);
  EXPECT_TRUE(c.prepend_bos);
  EXPECT_FALSE(c.use_ghost_grads);
  EXPECT_EQ(c.feature_sampling_window, 2000);
  EXPECT_EQ(c.feature_sampling_method, std::nullopt);
  EXPECT_EQ(c.resample_batches, 32);
  EXPECT_EQ(c.feature_reinit_scale, 0.2);
  EXPECT_EQ(c.dead_feature_window, 1000);
  EXPECT_EQ(c.dead_feature_threshold, 1e-8);
  EXPECT_EQ(c.wandb_project, "mats_sae_training_language_model");
  EXPECT_EQ(c.run_name, std::nullopt);
  EXPECT_EQ(c.wandb_entity, std::nullopt);
  EXPECT_EQ(c.wandb_log_frequency, 10);
  EXPECT_EQ(c.n_checkpoints, 0);
  EXPECT_EQ(c.checkpoint_path, "checkpoints");
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.seed, 42);
  EXPECT_EQ(c.dtype, DType::kFloat32);
  // Not the seed's default (true): this service has no W&B logging.
  EXPECT_FALSE(c.log_to_wandb);
}

TEST(RunConfigDefaultsTest, OfOurKeysAreTheDocumentedOnes) {
  RunConfig c = Parse("");
  EXPECT_EQ(c.architecture, Architecture::kStandard);
  EXPECT_EQ(c.k, std::nullopt);
  EXPECT_EQ(c.aux_k_coefficient, 1.0 / 32);
  EXPECT_EQ(c.dead_tokens_threshold, 10'000'000);
  EXPECT_EQ(c.l1_warm_up_steps, 0);
  EXPECT_EQ(c.tokenizer_path, std::nullopt);
  EXPECT_EQ(c.processing, Processing::kTransformerLens);
  EXPECT_TRUE(c.shuffle);
  EXPECT_EQ(c.activation_servers, 1);
  EXPECT_EQ(c.trainers, 1);
  EXPECT_EQ(c.max_restarts, 3);
  EXPECT_EQ(c.wire_dtype, DType::kFloat32);
}

TEST(ParseRunConfigTest, RecordsTheLineOfEveryKeyWritten) {
  RunConfig c = Parse("lr: 4e-4\n\n# comment\nl1_coefficient: 8e-5\n");
  EXPECT_THAT(c.source.lines, ElementsAre(Pair("dataset_path", 2), Pair("l1_coefficient", 6),
                                          Pair("lr", 3), Pair("model_path", 1)));
  EXPECT_EQ(c.source.name, "run.yaml");
  EXPECT_EQ(KeyLocation(c, "lr"), "run.yaml:3");
  EXPECT_EQ(KeyLocation(c, "seed"), "run.yaml");
}

TEST(ParseRunConfigTest, ReadsTheSeedsGpt2SmallRecipe) {
  RunConfig c = Parse(
      "model_name: gpt2-small\nhook_point: blocks.2.hook_resid_pre\nhook_point_layer: 2\n"
      "d_in: 768\nis_dataset_tokenized: false\nexpansion_factor: 64\n"
      "b_dec_init_method: geometric_median\nlr: 0.0004\nl1_coefficient: 0.00008\n"
      "lr_scheduler_name: constantwithwarmup\ntrain_batch_size: 4096\ncontext_size: 128\n"
      "lr_warm_up_steps: 5000\nn_batches_in_buffer: 128\ntotal_training_tokens: 300_000_000\n"
      "store_batch_size: 32\nuse_ghost_grads: True\nfeature_sampling_method: null\n"
      "feature_sampling_window: 1000\ndead_feature_window: 5000\ndead_feature_threshold: 1e-6\n"
      "device: cpu\nseed: 42\nn_checkpoints: 10\ncheckpoint_path: checkpoints\n"
      "dtype: torch.float32\n");
  EXPECT_EQ(c.hook_point_layer, 2);
  EXPECT_EQ(c.d_in, 768);
  EXPECT_EQ(EffectiveDSae(c), 768 * 64);
  EXPECT_EQ(c.is_dataset_tokenized, false);
  EXPECT_EQ(c.lr, 4e-4);
  EXPECT_EQ(c.l1_coefficient, 8e-5);
  EXPECT_EQ(c.total_training_tokens, 300'000'000);
  EXPECT_TRUE(c.use_ghost_grads);
  EXPECT_EQ(c.dead_feature_threshold, 1e-6);
  EXPECT_EQ(c.device, "cpu");
  EXPECT_EQ(c.dtype, DType::kFloat32);
  EXPECT_EQ(TotalTrainingSteps(c), 300'000'000 / 4096);
}

TEST(ParseRunConfigTest, AcceptsIntegersWithUnderscoresAndExactExponents) {
  EXPECT_EQ(Parse("total_training_tokens: 2_000_000\n").total_training_tokens, 2'000'000);
  EXPECT_EQ(Parse("total_training_tokens: 3e8\n").total_training_tokens, 300'000'000);
  EXPECT_EQ(Parse("total_training_tokens: 1.5e6\n").total_training_tokens, 1'500'000);
  EXPECT_EQ(Parse("seed: +7\n").seed, 7);
}

TEST(ParseRunConfigTest, RejectsAnIntegerThatIsNotExact) {
  EXPECT_EQ(ErrorOf("train_batch_size: 4096.5\n"),
            "run.yaml:3: train_batch_size: expected an integer (for example 4096, 2_000_000 or "
            "2e6), got '4096.5'");
  EXPECT_THAT(ErrorOf("total_training_tokens: 1_000_000 * 300\n"),
              HasSubstr("got '1_000_000 * 300'"));
  EXPECT_THAT(ErrorOf("context_size: 1__28\n"), HasSubstr("context_size: expected an integer"));
}

// Found by fuzz/run_config_fuzz.cc: a string that is not UTF-8 was accepted, and ToJson's dump
// (like cfg.json's when the SAE is exported) threw nlohmann's type_error 316 on it.
TEST(ParseRunConfigTest, RejectsAStringThatIsNotUtf8) {
  EXPECT_EQ(ErrorOf("model_name: gpt2-\xff\xf2\n"),
            "run.yaml:3: model_name: expected UTF-8 text, got a byte that is not UTF-8 at offset 5 "
            "of the value (save run.yaml as UTF-8)");
  EXPECT_THAT(ErrorOf("run_name: \"caf\xc3\"\n"), HasSubstr("at offset 3"));    // cut short
  EXPECT_THAT(ErrorOf("run_name: \xc0\xaf\n"), HasSubstr("at offset 0"));       // overlong
  EXPECT_THAT(ErrorOf("run_name: a\xed\xa0\x80\n"), HasSubstr("at offset 1"));  // surrogate
  EXPECT_EQ(Parse("run_name: caf\xc3\xa9 \xf0\x9f\x99\x82\n").run_name,
            "caf\xc3\xa9 \xf0\x9f\x99\x82");
  RunConfig config = Parse("");
  EXPECT_THAT(ApplyOverride(config, "run_name=\xfe").message(), HasSubstr("not UTF-8"));
}

TEST(ParseRunConfigTest, RejectsAWrongTypeNamingKeyLineAndWhatIsExpected) {
  EXPECT_EQ(ErrorOf("lr: abc\n"), "run.yaml:3: lr: expected a number, got 'abc'");
  EXPECT_EQ(ErrorOf("seed: 1\nuse_ghost_grads: yes\n"),
            "run.yaml:4: use_ghost_grads: expected true or false, got 'yes'");
  EXPECT_EQ(ErrorOf("lr: .inf\n"), "run.yaml:3: lr: expected a number, got '.inf'");
  EXPECT_EQ(ErrorOf("d_in: big\n"),
            "run.yaml:3: d_in: expected an integer (for example 4096, 2_000_000 or 2e6) or null, "
            "got 'big'");
}

TEST(ParseRunConfigTest, RejectsQuotedNumbersBecauseTheyAreStrings) {
  EXPECT_EQ(ErrorOf("lr: \"3e-4\"\n"),
            "run.yaml:3: lr: expected a number, got the string '3e-4' (write it without quotes)");
}

TEST(ParseRunConfigTest, RejectsNullForAKeyThatNeedsAValue) {
  EXPECT_EQ(ErrorOf("lr: null\n"), "run.yaml:3: lr: expected a number, got null");
  EXPECT_EQ(ErrorOf("device:\n"), "run.yaml:3: device: expected a string, got null");
}

TEST(ParseRunConfigTest, AcceptsNullTildeAndNothingForOptionalKeys) {
  RunConfig c = Parse("hook_point_layer: null\nd_in: ~\nlr_end:\nrun_name: \"null\"\n");
  EXPECT_EQ(c.hook_point_layer, std::nullopt);
  EXPECT_EQ(c.d_in, std::nullopt);
  EXPECT_EQ(c.lr_end, std::nullopt);
  EXPECT_EQ(c.run_name, "null");  // quoted: the string
}

TEST(ParseRunConfigTest, RejectsAnUnknownKeySuggestingTheClosestOne) {
  EXPECT_EQ(ErrorOf("l1_coeficient: 1e-3\n"),
            "run.yaml:3: l1_coeficient: unknown key; did you mean l1_coefficient? "
            "docs/config.md lists every key.");
  EXPECT_THAT(ErrorOf("LR: 1e-3\n"), HasSubstr("did you mean lr?"));
  EXPECT_EQ(ErrorOf("favourite_colour: blue\n"),
            "run.yaml:3: favourite_colour: unknown key; docs/config.md lists every key.");
}

TEST(ParseRunConfigTest, ExplainsThatRunYamlIsFlatWhenGivenASection) {
  EXPECT_THAT(ErrorOf("training:\n  lr: 1e-3\n"),
              HasSubstr("run.yaml:3: training: unknown key; run.yaml is a flat mapping"));
}

TEST(ParseRunConfigTest, RejectsAKeyGivenTwice) {
  EXPECT_EQ(ErrorOf("lr: 1e-3\nseed: 1\nlr: 2e-3\n"),
            "run.yaml:5: lr: given twice, on lines 3 and 5; keep one");
}

TEST(ParseRunConfigTest, RejectsAChoiceOutsideItsAllowedValues) {
  EXPECT_EQ(ErrorOf("architecture: top_k\n"),
            "run.yaml:3: architecture: expected one of standard, topk, batchtopk, jumprelu, gated, "
            "matryoshka_batchtopk, got 'top_k'");
  EXPECT_EQ(ErrorOf("lr_scheduler_name: cosine\n"),
            "run.yaml:3: lr_scheduler_name: expected one of constant, constantwithwarmup, "
            "linearwarmupdecay, cosineannealing, cosineannealingwarmup, "
            "cosineannealingwarmrestarts, got 'cosine'");
  EXPECT_EQ(ErrorOf("feature_sampling_method: l2\n"),
            "run.yaml:3: feature_sampling_method: expected one of anthropic or null, got 'l2'");
  EXPECT_THAT(ErrorOf("wire_dtype: int8\n"),
              HasSubstr("wire_dtype: expected one of float32, bfloat16, float16, got 'int8'"));
}

TEST(ParseRunConfigTest, AcceptsChoicesInAnyCaseAndTheSeedsTorchDtypes) {
  RunConfig c = Parse(
      "lr_scheduler_name: ConstantWithWarmup\ndtype: Torch.Float32\nwire_dtype: torch.float16\n"
      "feature_sampling_method: anthropic\nprocessing: none\n");
  EXPECT_EQ(c.lr_scheduler_name, LrScheduler::kConstantWithWarmup);
  EXPECT_EQ(c.dtype, DType::kFloat32);
  EXPECT_EQ(c.wire_dtype, DType::kFloat16);
  EXPECT_EQ(c.feature_sampling_method, FeatureSamplingMethod::kAnthropic);
  EXPECT_EQ(c.processing, Processing::kNone);
}

TEST(ParseRunConfigTest, RejectsOutOfRangeValuesSayingWhatIsAllowed) {
  EXPECT_EQ(ErrorOf("lr: 0\n"), "run.yaml:3: lr: must be > 0, got 0");
  EXPECT_EQ(ErrorOf("train_batch_size: -4096\n"),
            "run.yaml:3: train_batch_size: must be >= 1, got -4096");
  EXPECT_EQ(ErrorOf("context_size: 0\n"), "run.yaml:3: context_size: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf("l1_coefficient: -1e-3\n"),
            "run.yaml:3: l1_coefficient: must be >= 0, got -0.001");
  EXPECT_EQ(ErrorOf("dead_feature_threshold: 2\n"),
            "run.yaml:3: dead_feature_threshold: must be in [0, 1], got 2");
  EXPECT_EQ(ErrorOf("n_batches_in_buffer: 1\n"),
            "run.yaml:3: n_batches_in_buffer: must be >= 2, got 1");
  EXPECT_EQ(ErrorOf("device: mps\n"),
            "run.yaml:3: device: expected cpu, cuda or cuda:N, got 'mps'");
  EXPECT_EQ(ErrorOf("k: 0\n"), "run.yaml:3: k: must be >= 1, got 0");
  EXPECT_EQ(ErrorOf("model_name: \"\"\n"), "run.yaml:3: model_name: must not be empty");
}

TEST(ParseRunConfigTest, RefusesADeviceOrDTypeThisBuildDoesNotTrainIn) {
  EXPECT_EQ(ErrorOf("device: cuda\n"),
            "run.yaml:3: device: cuda is not available: this build trains on the CPU only (the "
            "model forward, the activation buffer and the SAE all run on the CPU; there is no "
            "CUDA path); write device: cpu");
  EXPECT_THAT(ErrorOf("device: cuda:1\n"), HasSubstr("run.yaml:3: device: cuda:1 is not"));
  EXPECT_THAT(ErrorOf("dtype: float16\n"),
              HasSubstr("run.yaml:3: dtype: float16 is not supported: the SAE trains in float32 "
                        "only"));
  EXPECT_THAT(ErrorOf("dtype: torch.bfloat16\n"), HasSubstr("dtype: bfloat16 is not supported"));
  absl::StatusOr<RunConfig> overridden =
      ParseRunConfig(kMinimal, "run.yaml", {"device=cuda:0"});
  ASSERT_FALSE(overridden.ok());
  EXPECT_THAT(overridden.status().message(), HasSubstr("--set: device: cuda:0 is not available"));
  EXPECT_EQ(Parse("device: cpu\ndtype: torch.float32\nwire_dtype: bfloat16\n").wire_dtype,
            DType::kBFloat16);
}

TEST(ParseRunConfigTest, RejectsAListWhereAValueBelongs) {
  EXPECT_EQ(ErrorOf("lr: [1e-3, 2e-3]\n"), "run.yaml:3: lr: expected number > 0, got a list");
}

TEST(ParseRunConfigTest, ReportsMalformedYamlWithItsLine) {
  absl::StatusOr<RunConfig> c = ParseRunConfig("lr: 1e-3\nseed: [1, 2\n", "run.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yaml:"));
  EXPECT_THAT(c.status().message(), HasSubstr("invalid YAML"));
  c = ParseRunConfig("- lr\n- seed\n", "run.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "run.yaml:1: expected a mapping of `key: value` lines at the top level, got a list");
}

TEST(ParseRunConfigTest, RequiresTheModelAndDatasetUnlessActivationsAreCached) {
  absl::StatusOr<RunConfig> c = ParseRunConfig("", "run.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yaml: model_path: required unless"));
  c = ParseRunConfig("model_path: /m\n", "run.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yaml: dataset_path: required unless"));
  c = ParseRunConfig("use_cached_activations: true\ncached_activations_path: /cache\n", "r.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
}

TEST(ParseRunConfigTest, RequiresACachePathWithCachedActivations) {
  EXPECT_EQ(ErrorOf("use_cached_activations: true\n"),
            "run.yaml: cached_activations_path: required when use_cached_activations is true "
            "(line 3); give the folder written by saectl cache");
}

TEST(ParseRunConfigTest, RejectsTopKWithoutK) {
  EXPECT_THAT(ErrorOf("architecture: topk\n"),
              HasSubstr("run.yaml: k: required by architecture topk (line 3)"));
  EXPECT_EQ(Parse("architecture: topk\nk: 32\n").k, 32);
}

TEST(ParseRunConfigTest, RejectsKLargerThanDSae) {
  EXPECT_EQ(ErrorOf("architecture: topk\nd_in: 16\nexpansion_factor: 2\nk: 33\n"),
            "run.yaml:6: k: 33 is larger than d_sae 32; allowed: 1 to d_sae");
}

TEST(ParseRunConfigTest, RejectsGhostGradsAndResamplingWithTopK) {
  EXPECT_THAT(ErrorOf("architecture: topk\nk: 32\nuse_ghost_grads: true\n"),
              HasSubstr("run.yaml:5: use_ghost_grads: ghost gradients belong to architecture "
                        "standard, but architecture is topk (line 3)"));
  EXPECT_THAT(ErrorOf("architecture: topk\nk: 32\nfeature_sampling_method: anthropic\n"),
              HasSubstr("run.yaml:5: feature_sampling_method: resampling belongs to "
                        "architecture standard"));
}

TEST(ParseRunConfigTest, RejectsHooksAnSaeCannotTrainOn) {
  EXPECT_THAT(ErrorOf("hook_point: blocks.0.hook_resid\n"),
              HasSubstr("run.yaml:3: hook_point: unknown hook point 'blocks.0.hook_resid'; "
                        "expected TransformerLens names"));
  EXPECT_THAT(ErrorOf("hook_point: blocks.0.attn.hook_pattern\n"),
              HasSubstr("run.yaml:3: hook_point: blocks.0.attn.hook_pattern has shape [batch, "
                        "head, query, key]"));
  EXPECT_THAT(ErrorOf("hook_point: ln_final.hook_scale\n"),
              HasSubstr("run.yaml:3: hook_point: ln_final.hook_scale has one value per token"));
}

TEST(ParseRunConfigTest, RejectsAHeadIndexOnAHookWithoutHeads) {
  EXPECT_EQ(ErrorOf("hook_point: blocks.1.hook_mlp_out\nhook_point_head_index: 3\n"),
            "run.yaml:4: hook_point_head_index: only per-head hooks (attn.hook_q, hook_k, hook_v, "
            "hook_z) have heads; hook_point blocks.1.hook_mlp_out (line 3) is not one; remove "
            "hook_point_head_index or set it to null");
  EXPECT_EQ(
      Parse("hook_point: blocks.1.attn.hook_z\nhook_point_head_index: 3\n").hook_point_head_index,
      3);
}

TEST(ParseRunConfigTest, RejectsAHookPointLayerThatContradictsTheHookName) {
  EXPECT_EQ(ErrorOf("hook_point: blocks.2.hook_resid_pre\nhook_point_layer: 3\n"),
            "run.yaml:4: hook_point_layer: 3 contradicts hook_point blocks.2.hook_resid_pre "
            "(line 3), which is in layer 2; remove hook_point_layer (it is derived) or make them "
            "agree");
}

TEST(ParseRunConfigTest, LetsDSaeAloneSetTheWidth) {
  RunConfig c = Parse("d_in: 768\nd_sae: 1000\n");
  EXPECT_EQ(c.d_sae, 1000);
  EXPECT_EQ(c.expansion_factor, std::nullopt);
  EXPECT_EQ(EffectiveDSae(c), 1000);
}

TEST(ParseRunConfigTest, AcceptsDSaeAndExpansionFactorOnlyWhenTheyAgree) {
  EXPECT_EQ(Parse("d_in: 768\nexpansion_factor: 4\nd_sae: 3072\n").d_sae, 3072);
  EXPECT_EQ(ErrorOf("d_in: 768\nexpansion_factor: 4\nd_sae: 1000\n"),
            "run.yaml:5: d_sae: 1000 contradicts expansion_factor 4 (line 4) times d_in 768 = "
            "3072; write only one of them");
  EXPECT_EQ(ErrorOf("expansion_factor: null\n"),
            "run.yaml:3: expansion_factor: null needs d_sae; give expansion_factor (for example "
            "4) or d_sae");
}

TEST(ParseRunConfigTest, RejectsARunShorterThanOneBatch) {
  EXPECT_EQ(ErrorOf("total_training_tokens: 1000\n"),
            "run.yaml:3: total_training_tokens: 1000 is less than train_batch_size 4096 "
            "(default): not one training step would run");
}

TEST(ParseRunConfigTest, RejectsABatchThatTrainersCannotShareEqually) {
  EXPECT_EQ(ErrorOf("trainers: 3\n"),
            "run.yaml: train_batch_size: 4096 is not divisible by trainers 3 (line 3); each "
            "trainer takes train_batch_size / trainers activations per step");
  EXPECT_EQ(Parse("trainers: 4\n").trainers, 4);
}

TEST(ParseRunConfigTest, RejectsAMixingBufferSmallerThanABatch) {
  EXPECT_EQ(ErrorOf("n_batches_in_buffer: 2\nstore_batch_size: 4\ncontext_size: 16\n"),
            "run.yaml:3: n_batches_in_buffer: 2 makes half a buffer 1 * store_batch_size 4 * "
            "context_size 16 = 64 activations, fewer than one trainer's batch of 4096; raise "
            "n_batches_in_buffer or store_batch_size");
}

TEST(ParseRunConfigTest, RejectsScheduleKeysThatDoNotFitTheRun) {
  EXPECT_THAT(ErrorOf("lr_scheduler_name: linearwarmupdecay\nlr_warm_up_steps: 488\n"),
              HasSubstr("run.yaml:4: lr_warm_up_steps: 488 leaves no steps to decay over: the "
                        "run has 488 steps"));
  EXPECT_EQ(
      Parse("lr_scheduler_name: constantwithwarmup\nlr_warm_up_steps: 5000\n").lr_warm_up_steps,
      5000);
  EXPECT_EQ(ErrorOf("lr: 1e-4\nlr_end: 1e-3\n"),
            "run.yaml:4: lr_end: 0.001 is above lr 0.0001 (line 3); allowed: 0 to lr");
  EXPECT_EQ(ErrorOf("n_checkpoints: 489\n"),
            "run.yaml:3: n_checkpoints: 489 is more than the run's 488 steps "
            "(total_training_tokens / train_batch_size)");
}

TEST(WarningsTest, SayThatLogToWandbIsReplacedByPrometheus) {
  RunConfig c = Parse("log_to_wandb: true\nwandb_project: p\nwandb_entity: me\n");
  ASSERT_EQ(c.source.warnings.size(), 1u);
  EXPECT_THAT(c.source.warnings[0], HasSubstr("run.yaml:3: log_to_wandb: this service does not "
                                              "log to Weights & Biases; metrics go to "
                                              "Prometheus"));
}

TEST(WarningsTest, AreEmptyForAPlainConfig) {
  EXPECT_THAT(Parse("lr: 4e-4\nlog_to_wandb: false\n").source.warnings, IsEmpty());
}

TEST(WarningsTest, NameKeysTheArchitectureIgnores) {
  RunConfig c = Parse("architecture: topk\nk: 32\nl1_coefficient: 8e-5\n");
  EXPECT_THAT(c.source.warnings,
              ElementsAre("run.yaml:5: l1_coefficient: ignored by architecture topk (line 3)"));
  c = Parse("aux_k_coefficient: 0.1\n");
  EXPECT_THAT(c.source.warnings, ElementsAre("run.yaml:3: aux_k_coefficient: ignored by "
                                             "architecture standard (default)"));
}

TEST(WarningsTest, RepeatTheSeedsAdviceAgainstZeroDecoderBias) {
  EXPECT_THAT(Parse("b_dec_init_method: zeros\n").source.warnings,
              ElementsAre(HasSubstr("run.yaml:3: b_dec_init_method: zeros is probably not what "
                                    "you want")));
}

TEST(SaeLens6SpellingTest, AnSaeBlockStartsTheDecoderBiasAtZeroAsSaeLens6Does) {
  RunConfig c = Parse("sae:\n  architecture: topk\n  k: 8\n");
  EXPECT_EQ(c.b_dec_init_method, BDecInitMethod::kZeros);
  EXPECT_TRUE(c.source.warnings.empty()) << c.source.warnings.front();
  // Written out, it stays zeros: the controller and the workers parse ToYaml's text.
  EXPECT_THAT(ToYaml(c), HasSubstr("b_dec_init_method: zeros"));
  // Said explicitly, it wins; without an sae: block the seed's default holds.
  EXPECT_EQ(Parse("sae:\n  k: 8\nb_dec_init_method: mean\n").b_dec_init_method,
            BDecInitMethod::kMean);
  EXPECT_EQ(Parse("k: 8\n").b_dec_init_method, BDecInitMethod::kGeometricMedian);
}

TEST(ApplyOverrideTest, SetsAKeyWithTheSameChecksAsAFile) {
  RunConfig c = Parse("");
  ASSERT_TRUE(ApplyOverride(c, "lr=4e-4").ok());
  ASSERT_TRUE(ApplyOverride(c, " total_training_tokens = 300_000_000").ok());
  ASSERT_TRUE(ApplyOverride(c, "run_name=my run: one").ok());
  ASSERT_TRUE(ApplyOverride(c, "hook_point_layer=null").ok());
  EXPECT_EQ(c.lr, 4e-4);
  EXPECT_EQ(c.total_training_tokens, 300'000'000);
  EXPECT_EQ(c.run_name, "my run: one");
  EXPECT_EQ(c.source.lines.at("lr"), RunConfigSource::kOverrideLine);
  EXPECT_EQ(KeyLocation(c, "lr"), "--set");
}

TEST(ApplyOverrideTest, RejectsAWrongTypeAndLeavesTheConfigUnchanged) {
  RunConfig c = Parse("");
  RunConfig before = c;
  absl::Status status = ApplyOverride(c, "lr=abc");
  EXPECT_EQ(status.message(), "--set: lr: expected a number, got 'abc'");
  EXPECT_EQ(c, before);
  EXPECT_FALSE(c.source.Given("lr"));
  EXPECT_EQ(ApplyOverride(c, "train_batch_size=0").message(),
            "--set: train_batch_size: must be >= 1, got 0");
  EXPECT_EQ(ApplyOverride(c, "lr=[1]").message(), "--set: lr: expected number > 0, got a list");
}

TEST(ApplyOverrideTest, RejectsUnknownKeysAndMissingEquals) {
  RunConfig c = Parse("");
  EXPECT_EQ(ApplyOverride(c, "expansion_factr=8").message(),
            "--set: expansion_factr: unknown key; did you mean expansion_factor? "
            "docs/config.md lists every key.");
  EXPECT_EQ(ApplyOverride(c, "lr").message(),
            "--set expects key=value (for example --set lr=4e-4), got 'lr'");
}

TEST(ApplyOverrideTest, WithDSaeAloneSetsTheWidth) {
  RunConfig c = Parse("d_in: 768\n");
  ASSERT_TRUE(ApplyOverride(c, "d_sae=1000").ok());
  EXPECT_EQ(c.expansion_factor, std::nullopt);
  EXPECT_TRUE(ValidateRunConfig(c).ok());
}

TEST(ApplyOverridesTest, ChecksCombinationsOnlyAfterTheLastOverride) {
  RunConfig c = Parse("");
  EXPECT_TRUE(ApplyOverrides(c, {"architecture=topk", "k=32"}).ok());
  EXPECT_EQ(c.architecture, Architecture::kTopK);
  RunConfig d = Parse("");
  EXPECT_EQ(ApplyOverrides(d, {"architecture=topk"}).message(),
            "run.yaml: k: required by architecture topk (--set); give the number of active "
            "latents per token, for example 32");
}

TEST(ApplyOverridesTest, RecomputeWarnings) {
  RunConfig c = Parse("");
  ASSERT_TRUE(ApplyOverrides(c, {"log_to_wandb=true"}).ok());
  EXPECT_THAT(c.source.warnings, ElementsAre(HasSubstr("--set: log_to_wandb: this service")));
}

TEST(LoadRunConfigTest, NamesTheFileInErrors) {
  const support::TempDir temp("parse_test");
  const std::string path = temp.File("load_run_config_test.yaml");
  std::ofstream(path) << kMinimal << "lr: fast\n";
  absl::StatusOr<RunConfig> c = LoadRunConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), path + ":3: lr: expected a number, got 'fast'");
  std::remove(path.c_str());
  EXPECT_FALSE(LoadRunConfig(path).ok());
}

TEST(ConfigKeyErrorTest, NamesTheKeyItsLineAndTheMessage) {
  RunConfig c = Parse("is_dataset_tokenized: true\n");
  absl::Status status = ConfigKeyError(c, "is_dataset_tokenized", "the dataset holds text");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "run.yaml:3: is_dataset_tokenized: the dataset holds text");
}

TEST(LoadRunConfigTest, OverridesMaySupplyAKeyTheFileLeavesOut) {
  // model_path and dataset_path are required; the file has neither.
  absl::StatusOr<RunConfig> without = ParseRunConfig("lr: 0.001\n", "run.yaml");
  EXPECT_FALSE(without.ok());
  absl::StatusOr<RunConfig> with = ParseRunConfig(
      "lr: 0.001\n", "run.yaml", {"model_path=/models/gpt2", "dataset_path=/data/corpus.jsonl"});
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_EQ(with->model_path, "/models/gpt2");
  EXPECT_EQ(with->source.lines.at("dataset_path"), RunConfigSource::kOverrideLine);
}

}  // namespace
}  // namespace sae::config

