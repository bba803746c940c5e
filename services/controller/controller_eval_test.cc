// The controller's record of evaluations: events, the run's newest, each SAE's newest in a run of
// many SAEs, and the gauges.
#include <string>
#include <utility>
#include <vector>

#include "core/metrics/text_format.h"
#include "gtest/gtest.h"
#include "services/controller/controller_test_fixture.h"

namespace sae::controller {
namespace {

using controller_testing::ControllerTest;
using controller_testing::kServer;
using controller_testing::kTrainer;
using support::TestRunYaml;

TEST_F(ControllerTest, EvaluationsBecomeEventsTheLatestEvalAndGaugesAndAFailureIsOnlyAnEvent) {
  std::string s0 = Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  std::string run_id = Submit(TestRunYaml(1, 1, 100));
  auto report = [&](const std::string& worker, int64_t step, const std::string& error) {
    v1::ReportProgressRequest request;
    request.set_worker_id(worker);
    request.set_run_id(run_id);
    v1::EvalReport& eval = *request.mutable_eval();
    eval.set_step(step);
    eval.set_tokens(step * 64);
    eval.set_server("h:1");
    if (error.empty()) {
      eval.set_results_json(R"({"model_performance_preservation":{"ce_loss_score":0.9}})");
      eval.set_ce_loss_score(0.5 + 0.001 * static_cast<double>(step));
      eval.set_explained_variance(0.75);
    } else {
      eval.set_error(error);
    }
    return controller_->ReportProgress(request);
  };
  ASSERT_TRUE(report(t0, 20, "").ok());
  ASSERT_TRUE(report(t0, 40, "activation server h:1: connection reset").ok());
  EXPECT_EQ(report(s0, 40, "").status().code(), absl::StatusCode::kInvalidArgument)
      << "only trainer rank 0 evaluates";

  v1::Run run = Get(run_id);
  ASSERT_TRUE(run.has_latest_eval());
  EXPECT_EQ(run.latest_eval().step(), 20) << "a failed evaluation leaves the latest success";
  EXPECT_DOUBLE_EQ(run.latest_eval().ce_loss_score(), 0.52);
  EXPECT_EQ(run.state(), v1::RUN_STATE_RUNNING) << "a failed evaluation fails nothing";
  EXPECT_EQ(run.step(), 0) << "an evaluation report is not training progress";
  auto events = controller_->ReadEvents(run_id, 0, 100);
  ASSERT_TRUE(events.ok());
  std::vector<const v1::RunEvent*> evals;
  for (const v1::RunEvent& e : *events) {
    if (e.type() == v1::RunEvent::TYPE_EVAL_COMPLETED || e.type() == v1::RunEvent::TYPE_EVAL_FAILED) {
      evals.push_back(&e);
    }
  }
  ASSERT_EQ(evals.size(), 2u);
  EXPECT_EQ(evals[0]->type(), v1::RunEvent::TYPE_EVAL_COMPLETED);
  EXPECT_EQ(evals[0]->step(), 20);
  EXPECT_NE(evals[0]->message().find("CE-loss score 0.52"), std::string::npos)
      << evals[0]->message();
  EXPECT_EQ(evals[1]->type(), v1::RunEvent::TYPE_EVAL_FAILED);
  EXPECT_NE(evals[1]->message().find("connection reset"), std::string::npos);
  const std::string text = metrics::FormatText(registry_.Collect());
  EXPECT_NE(text.find("sae_controller_run_eval_ce_loss_score{run_id=\"" + run_id + "\"} 0.52"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sae_controller_run_eval_explained_variance{run_id=\"" + run_id +
                      "\"} 0.75"),
            std::string::npos);

  Open();  // the latest evaluation survives a controller restart
  EXPECT_EQ(Get(run_id).latest_eval().step(), 20);
}

TEST_F(ControllerTest, ARunOfManySaesKeepsEachSaesNewestEvaluationAndExportsIt) {
  Register(kServer, "h:1");
  std::string t0 = Register(kTrainer, "h:2");
  const std::string run_id =
      Submit(TestRunYaml(1, 1, 100) + "sweep:\n  l1_coefficient: [0.001, 0.002]\n");
  const std::string first = "blocks.0.hook_resid_pre/l1=0.001";
  const std::string second = "blocks.0.hook_resid_pre/l1=0.002";
  auto report = [&](const std::string& sae, int64_t step, double score, const std::string& error) {
    v1::ReportProgressRequest request;
    request.set_worker_id(t0);
    request.set_run_id(run_id);
    v1::EvalReport& eval = *request.mutable_eval();
    eval.set_sae(sae);
    eval.set_step(step);
    eval.set_server("h:1");
    if (error.empty()) {
      eval.set_results_json("{}");
      eval.set_ce_loss_score(score);
    } else {
      eval.set_error(error);
    }
    return controller_->ReportProgress(request);
  };
  // Evaluations take turns: the first SAE at step 10, the second at 20, the first again at 30
  // (failed), so the first keeps step 10's.
  ASSERT_TRUE(report(first, 10, 0.81, "").ok());
  ASSERT_TRUE(report(second, 20, 0.92, "").ok());
  ASSERT_TRUE(report(first, 30, 0, "activation server h:1: connection reset").ok());

  v1::Run run = Get(run_id);
  ASSERT_EQ(run.saes_size(), 2);
  ASSERT_TRUE(run.saes(0).has_latest_eval()) << run.DebugString();
  EXPECT_EQ(run.saes(0).latest_eval().step(), 10);
  EXPECT_DOUBLE_EQ(run.saes(0).latest_eval().ce_loss_score(), 0.81);
  ASSERT_TRUE(run.saes(1).has_latest_eval());
  EXPECT_EQ(run.saes(1).latest_eval().step(), 20);
  EXPECT_EQ(run.latest_eval().sae(), second) << "the run's own is the newest of any SAE";

  const std::string text = metrics::FormatText(registry_.Collect());
  for (const auto& [sae, value] : {std::pair<std::string, std::string>{first, "0.81"},
                                   std::pair<std::string, std::string>{second, "0.92"}}) {
    const std::string series = "sae_controller_sae_eval_ce_loss_score{run_id=\"" + run_id +
                               "\",sae=\"" + sae + "\"} " + value;
    EXPECT_NE(text.find(series), std::string::npos) << series << "\n" << text;
  }
  Open();  // kept across a controller restart
  EXPECT_EQ(Get(run_id).saes(0).latest_eval().step(), 10);
}

}  // namespace
}  // namespace sae::controller
