#include "services/controller/scheduler.h"

#include "gtest/gtest.h"

namespace sae::controller {
namespace {

constexpr v1::WorkerRole kServer = v1::WORKER_ROLE_ACTIVATION_SERVER;
constexpr v1::WorkerRole kTrainer = v1::WORKER_ROLE_TRAINER;

GangRequest Gang(const std::string& run_id, int servers, int trainers) {
  GangRequest request;
  request.run_id = run_id;
  request.activation_servers = servers;
  request.trainers = trainers;
  return request;
}

TEST(SchedulerTest, PlacesAGangOnlyWhenEveryRoleHasEnoughIdleWorkers) {
  std::vector<IdleWorker> idle = {{"s1", kServer}, {"t1", kTrainer}};
  EXPECT_TRUE(PlanSchedule({Gang("r", 1, 2)}, idle).empty());
  idle.push_back({"t2", kTrainer});
  std::vector<Placement> placed = PlanSchedule({Gang("r", 1, 2)}, idle);
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].activation_servers, (std::vector<std::string>{"s1"}));
  EXPECT_EQ(placed[0].trainers, (std::vector<std::string>{"t1", "t2"}));
}

TEST(SchedulerTest, TwoRunsThatFitTogetherBothStartOnDistinctWorkers) {
  std::vector<IdleWorker> idle = {
      {"s1", kServer}, {"s2", kServer}, {"t1", kTrainer}, {"t2", kTrainer}};
  std::vector<Placement> placed = PlanSchedule({Gang("a", 1, 1), Gang("b", 1, 1)}, idle);
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[0].activation_servers[0], "s1");
  EXPECT_EQ(placed[1].activation_servers[0], "s2");
  EXPECT_EQ(placed[1].trainers[0], "t2");
}

TEST(SchedulerTest, ARunThatDoesNotFitBlocksTheRunsBehindIt) {
  std::vector<IdleWorker> idle = {{"s1", kServer}, {"t1", kTrainer}};
  // "big" is first in the queue and needs two trainers; "small" would fit but must wait.
  EXPECT_TRUE(PlanSchedule({Gang("big", 1, 2), Gang("small", 1, 1)}, idle).empty());
}

TEST(SchedulerTest, RestartedGangGetsItsPreviousWorkersBackInTheSameSlots) {
  GangRequest request = Gang("r", 2, 2);
  request.previous_activation_servers = {"s2", "s1"};
  request.previous_trainers = {"lost", "t1"};
  std::vector<IdleWorker> idle = {
      {"s1", kServer}, {"s2", kServer}, {"t1", kTrainer}, {"t3", kTrainer}};
  std::vector<Placement> placed = PlanSchedule({request}, idle);
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].activation_servers, (std::vector<std::string>{"s2", "s1"}));
  // Rank 1 keeps t1; the lost rank 0 is replaced by the idle t3.
  EXPECT_EQ(placed[0].trainers, (std::vector<std::string>{"t3", "t1"}));
}

TEST(SchedulerTest, WaitingReasonNamesEachMissingRole) {
  std::vector<IdleWorker> idle = {{"t1", kTrainer}};
  EXPECT_EQ(WaitingReason(Gang("r", 2, 2), idle),
            "waiting for workers: 2 activation servers needed, 0 idle; 2 trainers needed, 1 idle");
  EXPECT_EQ(WaitingReason(Gang("r", 0, 1), idle), "");
}

TEST(SchedulerTest, TrainersWithTooLittleMemoryAreSkippedAndTheReasonSaysSo) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  std::vector<IdleWorker> idle = {
      {"s1", kServer}, {"t1", kTrainer, kGiB}, {"t2", kTrainer, 4 * kGiB}, {"t3", kTrainer, 0}};
  GangRequest request = Gang("r", 1, 2);
  request.trainer_memory_bytes = 2 * kGiB;
  // t1 is too small; t3 reported nothing and is not checked.
  std::vector<Placement> placed = PlanSchedule({request}, idle);
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].trainers, (std::vector<std::string>{"t2", "t3"}));
  // A previous holder that is too small is not given its slot back.
  request.previous_trainers = {"t1"};
  placed = PlanSchedule({request}, idle);
  ASSERT_EQ(placed.size(), 1u);
  EXPECT_EQ(placed[0].trainers, (std::vector<std::string>{"t2", "t3"}));

  idle.pop_back();
  EXPECT_TRUE(PlanSchedule({request}, idle).empty());
  EXPECT_EQ(WaitingReason(request, idle),
            "waiting for workers: 2 trainers with 2.00 GiB for the run needed, 1 of 2 idle has it");
  request.trainer_memory_bytes = 0;
  EXPECT_EQ(PlanSchedule({request}, idle).size(), 1u);
}

}  // namespace
}  // namespace sae::controller
