// ActivationService.EvaluateSae on an activation server in-process on a loopback port, called
// as trainer rank 0 calls it (services/trainer RemoteEvaluator), over real gRPC.
#include "services/activation_server/sae_evaluations.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/training/run_assets.h"
#include "core/training/run_evaluation.h"
#include "core/wire/run_digest.h"
#include "services/activation_server/activation_server.h"
#include "services/trainer/remote_evaluation.h"
#include "support/temp_dir.h"
#include "support/tiny_run.h"

namespace sae::activation_server {
namespace {

class SaeEvaluationsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(support::WriteTinyRunFiles(dir_.path()).ok()); }

  config::RunConfig Config(std::vector<std::string> overrides = {}) {
    overrides.push_back("shuffle=false");
    config::RunConfig config = support::ParseTinyRun(dir_.path(), overrides);
    EXPECT_TRUE(training::ResolveRunConfig(config).ok());
    return config;
  }

  std::unique_ptr<ActivationServer> Start(const config::RunConfig& config) {
    ActivationServerOptions options;
    options.config = config;
    auto server = ActivationServer::Start(options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  support::TempDir dir_;
};

// EvaluateSae, as trainer rank 0 calls it (services/trainer RemoteEvaluator): the server's
// results are those of the run's own evaluator on the same SAE, in this process.
TEST_F(SaeEvaluationsTest, EvaluatesTheSaeItIsSentAsTheRunsEvaluatorDoes) {
  const config::RunConfig config = Config({"n_eval_batches=3"});
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<sparse::TrainerOptions> trainer_options = training::TrainerOptionsFor(config);
  ASSERT_TRUE(trainer_options.ok());
  sparse::SaeTrainer trainer(*trainer_options, nullptr);
  const sparse::SaeParameters& params = trainer.sae().params();

  std::vector<trainer::RemoteEvaluation> reported;
  trainer::RemoteEvaluationOptions remote;
  remote.servers = {"127.0.0.1:" + std::to_string(server->port())};
  remote.run_id = wire::DefaultRunId(config);
  remote.config_digest = wire::RunConfigDigest(config);
  trainer::RemoteEvaluator evaluator(
      remote, [&](const trainer::RemoteEvaluation& outcome) { reported.push_back(outcome); });
  trainer::RemoteEvaluation outcome = evaluator.EvaluateNow(7, 7 * 64, params, true);
  ASSERT_TRUE(outcome.results.ok()) << outcome.results.status();
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_EQ(outcome.step, 7);
  EXPECT_TRUE(outcome.final);
  EXPECT_EQ(server->evaluations(), 1);

  config::RunConfig local_config = config;
  auto assets = training::LoadRunAssets(local_config);
  ASSERT_TRUE(assets.ok()) << assets.status();
  auto local = training::RunEvaluator::Create(local_config, *assets);
  ASSERT_TRUE(local.ok() && *local != nullptr);
  EXPECT_EQ((*local)->contexts(), 3 * 4) << "n_eval_batches * store_batch_size";
  auto expected = (*local)->Evaluate(trainer);
  ASSERT_TRUE(expected.ok()) << expected.status();
  const eval::EvalResults& got = *outcome.results;
  EXPECT_NEAR(got.ce_loss_without_sae, expected->ce_loss_without_sae, 1e-9);
  EXPECT_NEAR(got.ce_loss_with_sae, expected->ce_loss_with_sae, 1e-9);
  EXPECT_NEAR(got.ce_loss_with_ablation, expected->ce_loss_with_ablation, 1e-9);
  EXPECT_NEAR(got.kl_div_with_sae, expected->kl_div_with_sae, 1e-9);
  EXPECT_NEAR(got.explained_variance, expected->explained_variance, 1e-9);
  EXPECT_NEAR(got.l0, expected->l0, 1e-9);
  EXPECT_GT(got.ce_loss_with_ablation, 0.0);
}

TEST_F(SaeEvaluationsTest, RefusesToEvaluateAnotherRunsSaeOrOneOfAnotherShape) {
  const config::RunConfig config = Config({"n_eval_batches=1"});
  auto server = Start(config);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<sparse::TrainerOptions> options = training::TrainerOptionsFor(config);
  ASSERT_TRUE(options.ok());
  sparse::SaeTrainer trainer(*options, nullptr);
  auto evaluate = [&](const std::string& run_id, const sparse::SaeParameters& params) {
    trainer::RemoteEvaluationOptions remote;
    remote.servers = {"127.0.0.1:" + std::to_string(server->port())};
    remote.run_id = run_id;
    remote.config_digest = wire::RunConfigDigest(config);
    trainer::RemoteEvaluator evaluator(remote, [](const trainer::RemoteEvaluation&) {});
    return evaluator.EvaluateNow(1, 64, params, false).results.status();
  };
  absl::Status other = evaluate("another-run", trainer.sae().params());
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition) << other;
  EXPECT_NE(other.message().find("another-run"), std::string::npos) << other;

  sparse::SaeParameters wider = trainer.sae().params();
  wider.W_enc = at::zeros({wider.W_enc.size(0), wider.W_enc.size(1) * 2});
  absl::Status shape = evaluate(wire::DefaultRunId(config), wider);
  EXPECT_EQ(shape.code(), absl::StatusCode::kInvalidArgument) << shape;
  EXPECT_NE(shape.message().find("W_enc"), std::string::npos) << shape;
  EXPECT_EQ(server->evaluations(), 0);

  auto without = Start(Config({"n_eval_batches=0"}));
  ASSERT_NE(without, nullptr);
  trainer::RemoteEvaluationOptions remote;
  remote.servers = {"127.0.0.1:" + std::to_string(without->port())};
  remote.run_id = wire::DefaultRunId(config);
  remote.config_digest = wire::RunConfigDigest(Config({"n_eval_batches=0"}));
  trainer::RemoteEvaluator evaluator(remote, [](const trainer::RemoteEvaluation&) {});
  EXPECT_EQ(evaluator.EvaluateNow(1, 64, trainer.sae().params(), false).results.status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sae::activation_server
