#include "core/training/local_training.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/token_file_format.h"
#include "core/io/saelens.h"
#include "core/io/tensor_io.h"
#include "core/model/gpt2_weights.h"
#include "core/training/activation_source.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "nlohmann/json.hpp"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::training {
namespace {

class LocalTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const model::Gpt2Config c = support::TinyConfig();
    ASSERT_TRUE(model::SaveGpt2(model::RandomGpt2Weights(c, 1), dir_ + "/model").ok());
    std::mt19937 rng(2);
    std::vector<int32_t> tokens;
    for (int doc = 0; doc < 400; ++doc) {
      int len = 10 + static_cast<int>(rng() % 50);
      for (int i = 0; i < len; ++i) tokens.push_back(static_cast<int32_t>(rng() % 1000));
      tokens.push_back(50256);
    }
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/tokens.bin", *data::EncodeNanoGptBin(tokens)).ok());
  }

  config::RunConfig Config(const std::string& extra = "", bool ghost = true) {
    std::string yaml =
        absl::StrCat("model_path: ", dir_, "/model\n", "dataset_path: ", dir_, "/tokens.bin\n",
                     "hook_point: blocks.1.hook_resid_pre\n"
                     "context_size: 16\n"
                     "expansion_factor: 4\n"
                     "train_batch_size: 64\n"
                     "total_training_tokens: 1280\n"
                     "n_batches_in_buffer: 8\n"
                     "store_batch_size: 4\n"
                     "lr: 0.001\n"
                     "lr_warm_up_steps: 2\n"
                     "l1_coefficient: 0.001\n"
                     "dead_feature_window: 3\n"
                     "feature_sampling_window: 5\n"
                     "b_dec_init_method: mean\n",
                     ghost ? "use_ghost_grads: true\n" : "", extra);
    auto config = config::ParseRunConfig(yaml, "test.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  const support::TempDir temp_{"local_training_test"};
  const std::string dir_ = temp_.path();
};

TEST(TrainerOptionsForTest, CarriesAdamsBetasAndTheDeadFeatureThreshold) {
  absl::StatusOr<config::RunConfig> c = config::ParseRunConfig(
      "model_path: /m\ndataset_path: /d\nd_in: 16\nadam_beta1: 0.5\nadam_beta2: 0.95\n"
      "dead_feature_threshold: 1e-4\n",
      "run.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<sparse::TrainerOptions> o = TrainerOptionsFor(*c);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->adam_beta1, 0.5);
  EXPECT_EQ(o->adam_beta2, 0.95);
  EXPECT_EQ(o->dead_feature_threshold, 1e-4);
}

TEST_F(LocalTrainingTest, TrainsToTheTokenBudgetWritingCheckpointsAndTheFinalSae) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  double first_loss = -1;
  options.on_step = [&](const std::string&, const sparse::StepMetrics& m, double, int64_t) {
    if (first_loss < 0) first_loss = m.mse_loss;
  };
  auto result = RunLocalTraining(Config("n_checkpoints: 4\n"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 20);
  EXPECT_EQ(result->tokens, 1280);
  for (int step : {5, 10, 15, 20}) {
    std::string ckpt = dir_ + "/out/checkpoints/" + CheckpointName(step);
    EXPECT_TRUE(std::filesystem::exists(ckpt + "/state.json")) << ckpt;
    EXPECT_TRUE(std::filesystem::exists(ckpt + "/sae/cfg.json")) << ckpt;
  }
  auto sae = io::ReadSaeLens(dir_ + "/out/final");
  ASSERT_TRUE(sae.ok()) << sae.status();
  EXPECT_EQ(sae->W_enc.size(0), 32);
  EXPECT_EQ(sae->W_enc.size(1), 128);
  EXPECT_EQ(sae->metadata.hook_name, "blocks.1.hook_resid_pre");
  EXPECT_EQ(sae->metadata.hook_layer, 1);
  EXPECT_TRUE(sae->sparsity.defined());
  EXPECT_LT(result->last.mse_loss, first_loss);
}

TEST_F(LocalTrainingTest, ResumingHalfwayEqualsTrainingStraightThroughWithoutShuffle) {
  LocalTrainingOptions straight;
  straight.output_dir = dir_ + "/straight";
  ASSERT_TRUE(RunLocalTraining(Config("shuffle: false\nn_checkpoints: 2\n"), straight).ok());

  LocalTrainingOptions resumed;
  resumed.output_dir = dir_ + "/resumed";
  resumed.resume_dir = dir_ + "/straight/checkpoints/" + CheckpointName(10);
  auto result = RunLocalTraining(Config("shuffle: false\n"), resumed);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 20);

  auto a = *io::ReadSaeLens(dir_ + "/straight/final");
  auto b = *io::ReadSaeLens(dir_ + "/resumed/final");
  EXPECT_LE((a.W_enc - b.W_enc).abs().max().item<double>(), 1e-6);
  EXPECT_LE((a.W_dec - b.W_dec).abs().max().item<double>(), 1e-6);
  EXPECT_LE((a.b_enc - b.b_enc).abs().max().item<double>(), 1e-6);
  EXPECT_LE((a.b_dec - b.b_dec).abs().max().item<double>(), 1e-6);
}

// The SAELens 6 architectures through the whole local run: training, a checkpoint, the final
// evaluation, the export (batchtopk family as jumprelu, as SAELens saves it), and a resume that
// continues exactly (their extra state, e.g. the running threshold, is in the checkpoint).
TEST_F(LocalTrainingTest, SaeLens6ArchitecturesTrainResumeExactlyAndExport) {
  const std::pair<const char*, const char*> cases[] = {
      {"architecture: batchtopk\nk: 4\ntopk_threshold_lr: 0.1\n", "jumprelu"},
      {"architecture: matryoshka_batchtopk\nk: 4\nmatryoshka_widths: [16, 64]\n", "jumprelu"},
      {"architecture: jumprelu\nl0_coefficient: 0.01\njumprelu_bandwidth: 0.5\n", "jumprelu"},
      {"architecture: gated\n", "gated"},
  };
  for (const auto& [keys, exported] : cases) {
    SCOPED_TRACE(keys);
    const std::string yaml = absl::StrCat("shuffle: false\n", keys);
    const std::string out = dir_ + "/" + std::to_string(std::hash<std::string>()(keys));
    LocalTrainingOptions straight;
    straight.output_dir = out + "/straight";
    int evaluations = 0;
    straight.on_eval = [&](const std::string&, const eval::EvalResults& results, int64_t, bool) {
      ++evaluations;
      EXPECT_GT(results.l0, 0);
    };
    auto first = RunLocalTraining(Config(yaml + "n_checkpoints: 2\n", false), straight);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->steps, 20);
    EXPECT_GT(first->last.l0, 0);
    EXPECT_GT(evaluations, 0) << "the final evaluation should run";

    LocalTrainingOptions resumed;
    resumed.output_dir = out + "/resumed";
    resumed.resume_dir = out + "/straight/checkpoints/" + CheckpointName(10);
    ASSERT_TRUE(RunLocalTraining(Config(yaml, false), resumed).ok());

    auto a = io::ReadSaeLens(out + "/straight/final");
    auto b = io::ReadSaeLens(out + "/resumed/final");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(a->metadata.architecture, exported);
    for (auto [x, y] : {std::pair{a->W_enc, b->W_enc}, std::pair{a->W_dec, b->W_dec},
                        std::pair{a->threshold, b->threshold}, std::pair{a->b_gate, b->b_gate},
                        std::pair{a->r_mag, b->r_mag}}) {
      if (!x.defined()) continue;
      EXPECT_TRUE(at::equal(x, y));
    }
  }
}

// SAELens 6's normalize_activations and apply_b_dec_to_input through a local run: the scale is
// estimated, kept in the checkpoint (a resume continues exactly) and folded into the export,
// together with the decoder bias the encoder did not read; constant_norm_rescale stays in
// cfg.json.
TEST_F(LocalTrainingTest, NormalisedActivationsTrainResumeExactlyAndExportTheSameFunction) {
  const std::pair<const char*, const char*> cases[] = {
      {"normalize_activations: expected_average_only_in\nn_batches_for_norm_estimate: 3\n"
       "apply_b_dec_to_input: false\n",
       "none"},
      {"normalize_activations: constant_norm_rescale\n", "constant_norm_rescale"},
  };
  for (const auto& [keys, written] : cases) {
    SCOPED_TRACE(keys);
    const std::string yaml = absl::StrCat("shuffle: false\n", keys);
    const std::string out = dir_ + "/" + std::to_string(std::hash<std::string>()(keys));
    LocalTrainingOptions straight;
    straight.output_dir = out + "/straight";
    ASSERT_TRUE(RunLocalTraining(Config(yaml + "n_checkpoints: 2\n"), straight).ok());
    LocalTrainingOptions resumed;
    resumed.output_dir = out + "/resumed";
    resumed.resume_dir = out + "/straight/checkpoints/" + CheckpointName(10);
    ASSERT_TRUE(RunLocalTraining(Config(yaml), resumed).ok());

    auto a = io::ReadSaeLens(out + "/straight/final");
    auto b = io::ReadSaeLens(out + "/resumed/final");
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(a->metadata.normalize_activations, written);
    EXPECT_TRUE(at::equal(a->W_enc, b->W_enc));
    EXPECT_TRUE(at::equal(a->b_enc, b->b_enc));
    EXPECT_TRUE(at::equal(a->b_dec, b->b_dec));

    // The trainer's own parameters, as the last checkpoint holds them.
    auto state = io::LoadTensors(out + "/straight/checkpoints/" + CheckpointName(20) +
                                 "/state.safetensors");
    ASSERT_TRUE(state.ok()) << state.status();
    at::Tensor W_enc = (*state)["W_enc"], b_enc = (*state)["b_enc"];
    at::Tensor W_dec = (*state)["W_dec"], b_dec = (*state)["b_dec"];
    if (std::string(written) == "none") {
      const double s = a->cfg["metadata"]["activation_norm_scaling_factor"].get<double>();
      EXPECT_GT(s, 0);
      EXPECT_TRUE(at::allclose(a->W_enc, W_enc * s, 1e-5, 1e-6));
      EXPECT_TRUE(at::allclose(a->W_dec, W_dec / s, 1e-5, 1e-6));
      EXPECT_TRUE(at::allclose(a->b_dec, b_dec / s, 1e-5, 1e-6));
      EXPECT_TRUE(at::allclose(a->b_enc, b_enc + at::mv(W_enc.t(), b_dec), 1e-4, 1e-5));
    } else {
      EXPECT_TRUE(at::equal(a->W_enc, W_enc));
      EXPECT_TRUE(at::equal(a->b_enc, b_enc));
    }
  }
}

TEST_F(LocalTrainingTest, AnInterruptWritesACheckpointAndStops) {
  std::atomic<bool> interrupt{false};
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  options.interrupt = &interrupt;
  options.on_step = [&](const std::string&, const sparse::StepMetrics& m, double, int64_t) {
    if (m.step == 7) interrupt = true;
  };
  auto result = RunLocalTraining(Config(), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->interrupted);
  EXPECT_EQ(result->steps, 7);
  EXPECT_TRUE(
      std::filesystem::exists(dir_ + "/out/checkpoints/" + CheckpointName(7) + "/state.json"));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/out/final"));
}

TEST_F(LocalTrainingTest, TopKTrainsFromAnActivationCache) {
  config::RunConfig config = Config("architecture: topk\nk: 4\n", /*ghost=*/false);
  auto assets = LoadRunAssets(config);
  ASSERT_TRUE(assets.ok()) << assets.status();
  auto source = OpenActivationSource(config, *assets);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_TRUE(WriteActivationCache(**source, config, 1280, 500, dir_ + "/cache").ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/cache/chunk_00002.safetensors"));

  config::RunConfig cached =
      Config(absl::StrCat("architecture: topk\nk: 4\nuse_cached_activations: true\n",
                          "cached_activations_path: ", dir_, "/cache\n"),
             /*ghost=*/false);
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/topk";
  auto result = RunLocalTraining(cached, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tokens, 1280);
  EXPECT_LE(result->last.l0, 4.0);
  EXPECT_TRUE(io::ReadSaeLens(dir_ + "/topk/final").ok());
}

TEST_F(LocalTrainingTest, EvaluatesAtItsCadenceAndAtTheEndAndWritesEvalResults) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  std::vector<std::pair<int64_t, bool>> evaluations;
  options.on_eval = [&](const std::string&, const eval::EvalResults& results, int64_t step,
                        bool final) {
    evaluations.emplace_back(step, final);
    EXPECT_EQ(results.contexts, 8);
    EXPECT_EQ(results.context_size, 16);
    EXPECT_TRUE(std::isfinite(results.ce_loss_with_sae));
  };
  auto result = RunLocalTraining(Config("n_eval_batches: 2\n"
                                        "eval_batch_size_prompts: 4\n"
                                        "eval_every_n_wandb_logs: 2\n"
                                        "wandb_log_frequency: 3\n"),
                                 options);
  ASSERT_TRUE(result.ok()) << result.status();
  // Every 2 * 3 steps, then once more after the last (20th) step.
  EXPECT_THAT(evaluations, ::testing::ElementsAre(std::make_pair(6, false),
                                                  std::make_pair(12, false),
                                                  std::make_pair(18, false),
                                                  std::make_pair(20, true)));
  ASSERT_TRUE(result->final_eval.has_value());
  auto written = ReadFile(dir_ + "/out/final/eval_results.json");
  ASSERT_TRUE(written.ok()) << written.status();
  nlohmann::json json = nlohmann::json::parse(*written);
  EXPECT_EQ(json["token_stats"]["contexts"], 8);
  EXPECT_NEAR(json["model_performance_preservation"]["ce_loss_score"].get<double>(),
              result->final_eval->ce_loss_score, 1e-12);
  // The exported SAE still loads with its evaluation beside it.
  EXPECT_TRUE(io::ReadSaeLens(dir_ + "/out/final").ok());
}

TEST_F(LocalTrainingTest, NoEvaluationsWithZeroEvalBatches) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  int evaluations = 0;
  options.on_eval = [&](const std::string&, const eval::EvalResults&, int64_t, bool) {
    ++evaluations;
  };
  auto result = RunLocalTraining(Config("n_eval_batches: 0\n"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(evaluations, 0);
  EXPECT_FALSE(result->final_eval.has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/out/final/eval_results.json"));
}

TEST_F(LocalTrainingTest, DefaultEvaluationBatchesShrinkToWhatASmallTailHolds) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  // 1% of this dataset's documents hold about 8 contexts of 16 tokens: 2 of the default 10 batches
  // of store_batch_size (4) contexts.
  auto result = RunLocalTraining(Config("eval_held_out_fraction: 0.01\n"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->final_eval.has_value());
  EXPECT_GE(result->final_eval->contexts, 4);
  EXPECT_LT(result->final_eval->contexts, 40);
  EXPECT_EQ(result->final_eval->contexts % 4, 0);
}

TEST_F(LocalTrainingTest, AHeldOutTailTooSmallForTheEvaluationNamesTheKeysToChange) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  auto result = RunLocalTraining(
      Config("n_eval_batches: 1000\neval_held_out_fraction: 0.01\n"), options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(result.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr("eval_held_out_fraction"));
  EXPECT_THAT(message, ::testing::HasSubstr("n_eval_batches"));
}

TEST_F(LocalTrainingTest, AMissingModelNamesTheKeyAndLine) {
  config::RunConfig config = Config();
  config.model_path = dir_ + "/nowhere";
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  auto result = RunLocalTraining(config, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("model_path"));
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("test.yaml:1"));
}

TEST_F(LocalTrainingTest, APretrainedSaeOfAnotherShapeNamesTheKeyAndBothShapes) {
  LocalTrainingOptions options;
  options.output_dir = dir_ + "/first";
  ASSERT_TRUE(RunLocalTraining(Config(), options).ok());  // d_sae 128
  config::RunConfig wider = Config(absl::StrCat("from_pretrained_path: ", dir_, "/first/final\n"));
  wider.expansion_factor = 8;
  options.output_dir = dir_ + "/second";
  auto result = RunLocalTraining(wider, options);
  ASSERT_FALSE(result.ok());
  const std::string message(result.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr("from_pretrained_path"));
  EXPECT_THAT(message, ::testing::HasSubstr("d_sae 128"));
  EXPECT_THAT(message, ::testing::HasSubstr("the run needs 32 and 256"));
  // A folder that holds no SAE names the key too.
  config::RunConfig missing = Config(absl::StrCat("from_pretrained_path: ", dir_, "/nowhere\n"));
  result = RunLocalTraining(missing, options);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("from_pretrained_path"));
}

}  // namespace
}  // namespace sae::training
