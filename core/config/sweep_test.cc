// sweep: and hook_points: (sweep.h): reading, names, grid order, refused keys, child errors.
#include "core/config/sweep.h"

#include "core/config/memory_estimate.h"

#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kMinimal[] =
    "model_path: /models/gpt2\n"
    "dataset_path: /data/corpus.txt\n";

RunConfig Parse(const std::string& extra) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(kMinimal + extra, "run.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : RunConfig{};
}

std::string ErrorOf(const std::string& extra) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(kMinimal + extra, "run.yaml");
  EXPECT_FALSE(config.ok()) << "parsed:\n" << kMinimal << extra;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(config.status().message());
}

std::vector<std::string> Names(const RunConfig& config) {
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config);
  EXPECT_TRUE(saes.ok()) << saes.status();
  std::vector<std::string> names;
  if (saes.ok()) {
    for (const SaeChild& sae : *saes) names.push_back(sae.name);
  }
  return names;
}

TEST(SweepTest, ARunWithoutSweepIsOneUnnamedSae) {
  RunConfig config = Parse("l1_coefficient: 8e-5\n");
  EXPECT_FALSE(TrainsManySaes(config));
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config);
  ASSERT_TRUE(saes.ok()) << saes.status();
  ASSERT_EQ(saes->size(), 1u);
  EXPECT_EQ((*saes)[0].name, "");
  EXPECT_EQ((*saes)[0].config, config);
}

TEST(SweepTest, AnL1SweepNamesEachSaeByItsHookAndCoefficient) {
  RunConfig config = Parse(
      "hook_point: blocks.2.hook_resid_pre\n"
      "sweep:\n"
      "  l1_coefficient: [4e-5, 8e-5, 1.6e-4]\n");
  EXPECT_TRUE(TrainsManySaes(config));
  EXPECT_THAT(Names(config),
              ElementsAre("blocks.2.hook_resid_pre/l1=4e-05", "blocks.2.hook_resid_pre/l1=8e-05",
                          "blocks.2.hook_resid_pre/l1=0.00016"));
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config);
  ASSERT_TRUE(saes.ok());
  EXPECT_EQ((*saes)[0].config.l1_coefficient, 4e-5);
  EXPECT_EQ((*saes)[1].config.l1_coefficient, 8e-5);
  EXPECT_EQ((*saes)[2].config.l1_coefficient, 1.6e-4);
  for (const SaeChild& sae : *saes) {
    EXPECT_FALSE(TrainsManySaes(sae.config));
    EXPECT_EQ(sae.config.hook_point, "blocks.2.hook_resid_pre");
  }
}

TEST(SweepTest, TheGridPutsHooksOutermostAndTheLastSweptKeyFastest) {
  RunConfig config = Parse(
      "architecture: topk\n"
      "hook_points: [blocks.1.hook_resid_pre, blocks.3.hook_mlp_out]\n"
      "sweep:\n"
      "  k: [32, 64]\n"
      "  lr: [1e-4, 3e-4]\n"
      "  aux_k_coefficient: [0.03125]\n");
  EXPECT_THAT(
      Names(config),
      ElementsAre(
          "blocks.1.hook_resid_pre/k=32/lr=0.0001", "blocks.1.hook_resid_pre/k=32/lr=0.0003",
          "blocks.1.hook_resid_pre/k=64/lr=0.0001", "blocks.1.hook_resid_pre/k=64/lr=0.0003",
          "blocks.3.hook_mlp_out/k=32/lr=0.0001", "blocks.3.hook_mlp_out/k=32/lr=0.0003",
          "blocks.3.hook_mlp_out/k=64/lr=0.0001", "blocks.3.hook_mlp_out/k=64/lr=0.0003"));
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config);
  ASSERT_TRUE(saes.ok());
  EXPECT_EQ((*saes)[5].config.hook_point, "blocks.3.hook_mlp_out");
  EXPECT_EQ((*saes)[5].config.k, 32);
  EXPECT_EQ((*saes)[5].config.lr, 3e-4);
}

TEST(SweepTest, HookPointsAloneNameEachSaeByItsHook) {
  RunConfig config = Parse("hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n");
  EXPECT_EQ(config.hook_point, "blocks.0.hook_resid_pre");
  EXPECT_THAT(Names(config), ElementsAre("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"));
  EXPECT_THAT(RunHookPoints(config),
              ElementsAre("blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"));
}

TEST(SweepTest, ChoicesAndWidthsAppearCanonicallyInNames) {
  RunConfig config = Parse(
      "k: 16\n"
      "sweep:\n"
      "  architecture: [Standard, TOPK]\n"
      "  expansion_factor: [2, 4]\n");
  EXPECT_THAT(Names(config), ElementsAre("blocks.0.hook_mlp_out/arch=standard/expansion=2",
                                         "blocks.0.hook_mlp_out/arch=standard/expansion=4",
                                         "blocks.0.hook_mlp_out/arch=topk/expansion=2",
                                         "blocks.0.hook_mlp_out/arch=topk/expansion=4"));
}

TEST(SweepTest, NumbersInNamesAreTheShortestExactForm) {
  EXPECT_EQ(SweepValueName("l1_coefficient", "0.00008"), "8e-05");
  EXPECT_EQ(SweepValueName("lr", "0.0003"), "0.0003");
  EXPECT_EQ(SweepValueName("lr", "0.000016"), "1.6e-05");
  EXPECT_EQ(SweepValueName("l1_coefficient", "1"), "1");
  EXPECT_EQ(SweepValueName("k", "32"), "32");
  EXPECT_EQ(SweepShortName("l1_coefficient"), "l1");
  EXPECT_EQ(SweepShortName("adam_beta1"), "adam_beta1");
}

TEST(SweepTest, StreamKeysAreRefusedWithTheReason) {
  EXPECT_THAT(ErrorOf("sweep:\n  context_size: [64, 128]\n"),
              HasSubstr("run.yaml:4: sweep.context_size: cannot be swept: it changes the "
                        "activation stream"));
  EXPECT_THAT(ErrorOf("sweep:\n  train_batch_size: [1024, 4096]\n"),
              HasSubstr("activation stream"));
  EXPECT_THAT(ErrorOf("sweep:\n  seed: [1, 2]\n"), HasSubstr("seeds the mixing buffer"));
  EXPECT_THAT(ErrorOf("sweep:\n  hook_point: [blocks.0.hook_resid_pre]\n"),
              HasSubstr("write hook_points"));
  EXPECT_THAT(ErrorOf("sweep:\n  n_checkpoints: [1, 2]\n"), HasSubstr("at the same steps"));
  EXPECT_THAT(ErrorOf("sweep:\n  trainers: [1, 2]\n"), HasSubstr("processes"));
  EXPECT_THAT(ErrorOf("sweep:\n  l1_coeficient: [1, 2]\n"),
              HasSubstr("did you mean l1_coefficient?"));
}

TEST(SweepTest, SaeLens6TrainingOptionsAreSweptPerSae) {
  RunConfig config = Parse(
      "hook_point: blocks.0.hook_resid_pre\n"
      "sweep:\n"
      "  normalize_activations: [none, expected_average_only_in]\n"
      "  apply_b_dec_to_input: [true, false]\n");
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config);
  ASSERT_TRUE(saes.ok()) << saes.status();
  ASSERT_EQ(saes->size(), 4u);
  EXPECT_EQ((*saes)[0].config.normalize_activations, NormalizeActivations::kNone);
  EXPECT_TRUE((*saes)[0].config.apply_b_dec_to_input);
  EXPECT_FALSE((*saes)[1].config.apply_b_dec_to_input);
  EXPECT_EQ((*saes)[3].config.normalize_activations, NormalizeActivations::kExpectedAverageOnlyIn);
  EXPECT_FALSE((*saes)[3].config.apply_b_dec_to_input);
  EXPECT_THAT(ErrorOf("sweep:\n  n_batches_for_norm_estimate: [10, 100]\n"),
              HasSubstr("reads its batches once"));
}

TEST(SweepTest, EverySchemaKeyIsDecidedSweepableOrNot) {
  for (const KeySpec& key : RunConfigKeys()) {
    const std::string why = WhyNotSweepable(key.name);
    EXPECT_THAT(why, ::testing::Not(HasSubstr("not among the keys")))
        << key.name << " has no sweep rule in sweep.cc: decide whether it may be swept";
  }
  EXPECT_THAT(SweepableKeys(), ::testing::Contains("l1_coefficient"));
  EXPECT_THAT(SweepableKeys(), ::testing::Not(::testing::Contains("total_training_tokens")));
}

TEST(SweepTest, MalformedDeclarationsAreRefused) {
  EXPECT_THAT(ErrorOf("sweep:\n  lr: 1e-4\n"), HasSubstr("sweep.lr: expected a list of values"));
  EXPECT_THAT(ErrorOf("sweep: [lr]\n"), HasSubstr("sweep: expected a mapping"));
  EXPECT_THAT(ErrorOf("sweep:\n  lr: [1e-4, 0.0001]\n"), HasSubstr("listed twice"));
  EXPECT_THAT(ErrorOf("sweep:\n  lr: [1e-4, abc]\n"),
              HasSubstr("run.yaml:4: sweep.lr: expected a number"));
  EXPECT_THAT(ErrorOf("hook_points: blocks.0.hook_resid_pre\n"),
              HasSubstr("hook_points: expected a list of hooks"));
  EXPECT_THAT(ErrorOf("hook_points: [blocks.0.attn.hook_pattern]\n"), HasSubstr("hook_pattern"));
  EXPECT_THAT(ErrorOf("hook_points: [blocks.0.hook_resid_pre, blocks.0.hook_resid_pre]\n"),
              HasSubstr("listed twice"));
  EXPECT_THAT(ErrorOf("hook_point: blocks.5.hook_resid_pre\n"
                      "hook_points: [blocks.0.hook_resid_pre]\n"),
              HasSubstr("run.yaml:3: hook_point: blocks.5.hook_resid_pre is not among "
                        "hook_points"));
}

TEST(SweepTest, AHookPointOverrideOutsideHookPointsIsRefused) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(std::string(kMinimal) + "hook_points: [blocks.0.hook_resid_pre]\n",
                     "run.yaml", {"hook_point=blocks.1.hook_resid_pre"});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr("--set: hook_point: blocks.1.hook_resid_pre is not among hook_points"));
}

TEST(SweepTest, AChildThatIsInvalidIsNamedInTheError) {
  // k is required by topk; the standard child is fine, the topk one has no k.
  EXPECT_THAT(ErrorOf("sweep:\n  architecture: [standard, topk]\n"),
              ::testing::AllOf(HasSubstr("k: required by architecture topk (line 4)"),
                               HasSubstr("(SAE blocks.0.hook_mlp_out/arch=topk of this run)")));
  // A swept value that fails a check across keys is located at the sweep.
  EXPECT_THAT(ErrorOf("lr: 1e-4\nsweep:\n  lr_end: [1e-5, 1e-3]\n"),
              HasSubstr("run.yaml:5: sweep.lr_end: 0.001 is above lr 0.0001"));
}

TEST(SweepTest, ChildrenAreResolvedAgainstTheModel) {
  RunConfig config = Parse(
      "architecture: topk\n"
      "expansion_factor: 2\n"
      "hook_points: [blocks.0.hook_resid_pre, blocks.1.mlp.hook_post]\n"
      "sweep:\n"
      "  k: [8, 100]\n");
  model::ModelDims dims;
  dims.n_layer = 2;
  dims.d_model = 16;
  dims.n_head = 2;
  dims.d_mlp = 64;
  dims.n_ctx = 128;
  dims.d_vocab = 100;
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config, dims);
  ASSERT_FALSE(saes.ok());
  EXPECT_THAT(saes.status().message(),
              HasSubstr("sweep.k: 100 is larger than d_sae 32; allowed: 1 to d_sae (SAE "
                        "blocks.0.hook_resid_pre/k=100 of this run)"));
  config.sweep[0].values = {"8", "16"};
  saes = ExpandSaes(config, dims);
  ASSERT_TRUE(saes.ok()) << saes.status();
  EXPECT_EQ((*saes)[0].config.d_in, 16);
  EXPECT_EQ((*saes)[3].config.d_in, 64);
  EXPECT_EQ((*saes)[3].config.hook_point_layer, 1);
  EXPECT_EQ(ResolveAgainstModel(config, dims), absl::OkStatus());
  EXPECT_EQ(config.d_in, std::nullopt);  // the run's derived keys belong to each SAE
}

TEST(SweepTest, WarningsOfSomeSaesNameThem) {
  RunConfig config = Parse("k: 16\nsweep:\n  architecture: [standard, topk]\n");
  ASSERT_EQ(config.source.warnings.size(), 1u);
  EXPECT_THAT(config.source.warnings[0],
              HasSubstr("run.yaml:3: k: ignored by architecture standard (line 5) (SAE "
                        "blocks.0.hook_mlp_out/arch=standard)"));
}

TEST(SweepTest, ToYamlRoundTripsTheDeclaration) {
  RunConfig config = Parse(
      "hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n"
      "sweep:\n"
      "  l1_coefficient: [4e-5, 8e-5]\n"
      "  sae.architecture: [standard, gated]\n");
  EXPECT_EQ(config.sweep[1].key, "architecture");
  const std::string yaml = ToYaml(config);
  EXPECT_THAT(yaml, HasSubstr("hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n"
                              "sweep:\n"
                              "  l1_coefficient: [0.00004, 0.00008]\n"
                              "  architecture: [standard, gated]\n"));
  absl::StatusOr<RunConfig> again = ParseRunConfig(yaml, "again.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, config);
  EXPECT_EQ(ToJson(config)["sweep"]["l1_coefficient"][1], "0.00008");
  EXPECT_THAT(ToYaml(Parse("")), ::testing::Not(HasSubstr("sweep")));
}

TEST(MemoryEstimateTest, CountsEachSaesStateAndTheSharedBufferOnce) {
  RunConfig config = Parse(
      "expansion_factor: 2\n"
      "train_batch_size: 64\n"
      "n_batches_in_buffer: 4\n"
      "store_batch_size: 4\n"
      "context_size: 8\n"
      "hook_points: [blocks.0.hook_resid_pre, blocks.1.mlp.hook_post]\n"
      "sweep:\n  architecture: [standard, gated]\n");
  model::ModelDims dims;
  dims.n_layer = 2;
  dims.d_model = 16;
  dims.n_head = 2;
  dims.d_mlp = 64;
  dims.n_ctx = 128;
  dims.d_vocab = 100;
  absl::StatusOr<std::vector<SaeChild>> saes = ExpandSaes(config, dims);
  ASSERT_TRUE(saes.ok()) << saes.status();
  RunMemory memory = EstimateMemory(config, *saes);
  ASSERT_EQ(memory.saes.size(), 4u);
  // standard on d_in 16, d_sae 32: W_enc + W_dec + b_enc + b_dec = 1024 + 32 + 16 floats.
  EXPECT_EQ(memory.saes[0].parameters, 1072 * 4);
  EXPECT_EQ(memory.saes[0].adam, 2 * 1072 * 4);
  EXPECT_EQ(memory.saes[0].gradients, 1072 * 4);
  EXPECT_EQ(memory.saes[0].feature_state, 16 * 32);
  // gated: no b_enc, r_mag, b_gate and b_mag instead.
  EXPECT_EQ(memory.saes[1].parameters, (1024 + 16 + 3 * 32) * 4);
  // d_in 64 (mlp.hook_post), d_sae 128.
  EXPECT_EQ(memory.saes[2].d_sae, 128);
  // The largest SAE's temporaries: 3 x 64 x (128 + 64) floats.
  EXPECT_EQ(memory.step, 3 * 64 * (128 + 64) * 4);
  // One buffer of both hooks' columns: (4 x 4 x 8 + 64) rows x (16 + 64).
  EXPECT_EQ(memory.buffer, (128 + 64) * 80 * 4);
  int64_t total = memory.step + memory.buffer;
  for (const SaeMemory& sae : memory.saes) total += sae.total();
  EXPECT_EQ(memory.total(), total);
}

// A cluster run (activation servers, trainers) declares many SAEs like `saectl train` does: the
// activation servers capture every hook, each trainer trains every SAE.
TEST(SweepTest, ClusterRunsTrainManySaes) {
  const RunConfig config = Parse(
      "activation_servers: 2\ntrainers: 2\n"
      "hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n"
      "sweep:\n  l1_coefficient: [4e-5, 8e-5]\n");
  EXPECT_TRUE(TrainsManySaes(config));
  EXPECT_THAT(Names(config), ElementsAre("blocks.0.hook_resid_pre/l1=4e-05",
                                         "blocks.0.hook_resid_pre/l1=8e-05",
                                         "blocks.1.hook_resid_pre/l1=4e-05",
                                         "blocks.1.hook_resid_pre/l1=8e-05"));
  // What the run's processes share stays out of a sweep, on a cluster as alone.
  EXPECT_THAT(ErrorOf("activation_servers: 2\nsweep:\n  trainers: [1, 2]\n"),
              HasSubstr("trainers"));
}

TEST(SweepTest, ACacheHoldsOneHook) {
  EXPECT_THAT(ErrorOf("use_cached_activations: true\ncached_activations_path: /c\n"
                      "hook_points: [blocks.0.hook_resid_pre, blocks.1.hook_resid_pre]\n"),
              HasSubstr("an activation cache holds one hook"));
  EXPECT_THAT(Names(Parse("use_cached_activations: true\ncached_activations_path: /c\n"
                          "sweep:\n  lr: [1e-4, 2e-4]\n")),
              ElementsAre("blocks.0.hook_mlp_out/lr=0.0001", "blocks.0.hook_mlp_out/lr=0.0002"));
}

}  // namespace
}  // namespace sae::config
