#include <string>

#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::config {
namespace {

using ::testing::HasSubstr;

RunConfig MustParse(const std::string& yaml) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(yaml, "stored.yaml");
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << yaml;
  return config.ok() ? *config : RunConfig{};
}

// A config with every key away from its default where the combination allows it.
RunConfig Unusual() {
  RunConfig c;
  c.model_name = "gpt2";
  c.model_path = "/models/gpt2 small/\"quoted\"";
  c.tokenizer_path = "null";
  c.processing = Processing::kNone;
  c.hook_point = "blocks.3.attn.hook_z";
  c.hook_point_layer = 3;
  c.hook_point_head_index = 5;
  c.d_in = 64;
  c.dataset_path = "123";
  c.is_dataset_tokenized = true;
  c.context_size = 64;
  c.prepend_bos = false;
  c.shuffle = false;
  c.cached_activations_path = "a: b # c\nnext\tline \\ end";
  c.expansion_factor = 16;
  c.d_sae = 1024;
  c.b_dec_init_method = BDecInitMethod::kMean;
  c.from_pretrained_path = "true";
  c.lr = 1.0 / 3;
  c.adam_beta1 = 0.5;
  c.adam_beta2 = 0.95;
  c.l1_coefficient = 8e-5;
  c.l1_warm_up_steps = 100;
  c.lr_scheduler_name = LrScheduler::kCosineAnnealingWarmRestarts;
  c.lr_warm_up_steps = 0;
  c.lr_end = 1e-300;
  c.train_batch_size = 1024;
  c.total_training_tokens = 123'456'789;
  c.seed = 0;
  c.n_batches_in_buffer = 7;
  c.store_batch_size = 16;
  c.use_ghost_grads = true;
  c.feature_sampling_window = 1;
  c.feature_sampling_method = FeatureSamplingMethod::kAnthropic;
  c.resample_batches = 2;
  c.feature_reinit_scale = 0.5;
  c.dead_feature_window = 5000;
  c.dead_feature_threshold = 1e-6;
  c.dead_tokens_threshold = 1;
  c.n_checkpoints = 10;
  c.checkpoint_path = "ckpt dir";
  // device and dtype keep their defaults: cpu and float32 are the only values this build trains
  // with (validate.cc refuses the others).
  c.activation_servers = 2;
  c.trainers = 4;
  c.max_restarts = 0;
  c.wire_dtype = DType::kFloat16;
  c.log_to_wandb = true;
  c.wandb_project = "";
  c.run_name = "run 'one'";
  c.wandb_entity = "é ünïcode";
  c.wandb_log_frequency = 100;
  return c;
}

TEST(ToYamlTest, RoundTripsTheDefaults) {
  RunConfig c = MustParse("model_path: /m\ndataset_path: /d\n");
  EXPECT_EQ(MustParse(ToYaml(c)), c);
}

TEST(ToYamlTest, RoundTripsEveryKeySetAwayFromItsDefault) {
  RunConfig c = Unusual();
  ASSERT_TRUE(ValidateRunConfig(c).ok()) << ValidateRunConfig(c);
  std::string yaml = ToYaml(c);
  RunConfig back = MustParse(yaml);
  EXPECT_EQ(back, c) << yaml;
  EXPECT_EQ(back.model_path, c.model_path);
  EXPECT_EQ(back.cached_activations_path, c.cached_activations_path);
  EXPECT_EQ(back.lr, 1.0 / 3);
  EXPECT_EQ(back.lr_end, 1e-300);
  EXPECT_EQ(ToYaml(back), yaml);
}

TEST(ToYamlTest, RoundTripsAConfigResolvedAgainstAModel) {
  RunConfig c = MustParse(
      "model_path: /m\ndataset_path: /d\nhook_point: blocks.2.hook_resid_pre\n"
      "expansion_factor: 64\n");
  ASSERT_TRUE(ResolveAgainstModel(c, {12, 768, 12, 3072, 1024, 50257}).ok());
  RunConfig back = MustParse(ToYaml(c));
  EXPECT_EQ(back, c);
  EXPECT_EQ(back.d_sae, 49152);
  c = MustParse("model_path: /m\ndataset_path: /d\nd_sae: 1000\n");
  ASSERT_TRUE(ResolveAgainstModel(c, {12, 768, 12, 3072, 1024, 50257}).ok());
  EXPECT_EQ(MustParse(ToYaml(c)), c);
}

TEST(ToYamlTest, WritesEveryKeyOnceUnderItsGroup) {
  std::string yaml = ToYaml(RunConfig{});
  for (const KeySpec& key : RunConfigKeys()) {
    EXPECT_THAT(yaml, HasSubstr("\n" + key.name + ": " + key.default_text + "\n"));
  }
  for (const std::string& group : RunConfigGroups()) {
    EXPECT_THAT(yaml, HasSubstr("# " + group + "\n"));
  }
}

TEST(ToYamlTest, WritesReadableScalars) {
  std::string yaml = ToYaml(RunConfig{});
  EXPECT_THAT(yaml, HasSubstr("\nlr: 0.0003\n"));
  EXPECT_THAT(yaml, HasSubstr("\nhook_point: blocks.0.hook_mlp_out\n"));
  EXPECT_THAT(yaml, HasSubstr("\nmodel_path: null\n"));
  EXPECT_THAT(yaml, HasSubstr("\ntotal_training_tokens: 2000000\n"));
  EXPECT_THAT(yaml, HasSubstr("\nlr_scheduler_name: constantwithwarmup\n"));
}

TEST(ToJsonTest, HoldsEveryKeyWithItsJsonType) {
  RunConfig c = MustParse("model_path: /m\ndataset_path: /d\nd_in: 768\n");
  nlohmann::json json = ToJson(c);
  EXPECT_EQ(json.size(), RunConfigKeys().size());
  EXPECT_EQ(json["lr"], 3e-4);
  EXPECT_EQ(json["train_batch_size"], 4096);
  EXPECT_EQ(json["d_in"], 768);
  EXPECT_TRUE(json["hook_point_layer"].is_null());
  EXPECT_EQ(json["architecture"], "standard");
  EXPECT_EQ(json["use_ghost_grads"], false);
  EXPECT_EQ(json["model_path"], "/m");
  EXPECT_EQ(json["dtype"], "float32");
}

TEST(RunConfigEqualityTest, IgnoresWhereKeysCameFrom) {
  RunConfig a = MustParse("model_path: /m\ndataset_path: /d\nlr: 3e-4\n");
  RunConfig b = MustParse("dataset_path: /d\nmodel_path: /m\n");
  EXPECT_EQ(a, b);
  b.lr = 4e-4;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace sae::config
