// The trainers' process group over real c10d: a TCPStore on 127.0.0.1 and ProcessGroupGloo,
// one per rank, each rank on its own thread (no fake collective anywhere).
#include "services/trainer/process_group.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/sae/sae_trainer.h"
#include "core/sae/sparse_autoencoder.h"
#include "support/ports.h"

namespace sae::trainer {
namespace {

using support::FreeLoopbackPort;

ProcessGroupOptions Rank(int rank, int world_size, int port) {
  ProcessGroupOptions options;
  options.rank = rank;
  options.world_size = world_size;
  options.rendezvous = "127.0.0.1:" + std::to_string(port);
  options.rendezvous_timeout = absl::Seconds(30);
  options.collective_timeout = absl::Seconds(30);
  return options;
}

// Runs `body(collective)` on `world_size` threads, each the rank of a fresh Gloo group.
void RunGroup(int world_size, const std::function<void(ProcessGroupCollective&)>& body) {
  const int port = FreeLoopbackPort();
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world_size; ++rank) {
    ranks.emplace_back([&, rank] {
      auto group = ProcessGroupCollective::Create(Rank(rank, world_size, port));
      ASSERT_TRUE(group.ok()) << group.status();
      body(**group);
    });
  }
  for (std::thread& t : ranks) t.join();
}

TEST(ProcessGroupCollectiveTest, SumsAndBroadcastsOverRealGloo) {
  RunGroup(2, [](ProcessGroupCollective& group) {
    EXPECT_EQ(group.backend(), CollectiveBackend::kGloo);
    at::Tensor t = at::full({5}, static_cast<float>(group.rank() + 1));
    ASSERT_TRUE(group.AllReduceSum(t).ok());
    EXPECT_TRUE(at::equal(t, at::full({5}, 3.0f)));
    at::Tensor ints = at::full({3}, group.rank() == 0 ? 7 : 0, at::kInt);
    ASSERT_TRUE(group.AllReduceSum(ints).ok());
    EXPECT_TRUE(at::equal(ints, at::full({3}, 7, at::kInt)));
    at::Tensor b = at::full({2, 2}, static_cast<float>(group.rank() * 10 + 1));
    ASSERT_TRUE(group.Broadcast(b, 1).ok());
    EXPECT_TRUE(at::equal(b, at::full({2, 2}, 11.0f)));
    EXPECT_GT(group.TakeCollectiveSeconds(), 0.0);
    EXPECT_EQ(group.TakeCollectiveSeconds(), 0.0);
  });
}

TEST(ProcessGroupCollectiveTest, AllReduceMaxGivesEveryRankTheLargestValue) {
  // What a restarted group uses to learn the furthest token count any of its ranks reached.
  RunGroup(3, [](ProcessGroupCollective& group) {
    const int64_t mine[] = {64000, 0, int64_t{5} << 40};
    absl::StatusOr<int64_t> max = AllReduceMax(mine[group.rank()], &group);
    ASSERT_TRUE(max.ok()) << max.status();
    EXPECT_EQ(*max, int64_t{5} << 40) << "rank " << group.rank();
  });
  absl::StatusOr<int64_t> alone = AllReduceMax(123, nullptr);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(*alone, 123);
}

TEST(ProcessGroupCollectiveTest, RendezvousFailsInTimeWhenARankNeverComes) {
  ProcessGroupOptions options = Rank(0, 2, FreeLoopbackPort());
  options.rendezvous_timeout = absl::Seconds(1);
  auto start = std::chrono::steady_clock::now();
  auto group = ProcessGroupCollective::Create(options);
  EXPECT_FALSE(group.ok());
  EXPECT_NE(group.status().message().find("rank 0 of 2"), std::string::npos) << group.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(ProcessGroupCollectiveTest, AnAbortEndsARendezvousInProgress) {
  const int port = FreeLoopbackPort();
  // Rank 0 waits for a rank 1 that never comes; rank 1 for a rank 0 that never listens. The
  // abort comes from another thread once the rendezvous says it is waiting.
  for (int rank : {0, 1}) {
    std::atomic<bool> abort{false};
    absl::Notification waiting;
    std::thread aborter([&] {
      waiting.WaitForNotification();
      abort = true;
    });
    ProcessGroupOptions options = Rank(rank, 2, port);
    options.rendezvous_timeout = absl::Seconds(120);
    options.abort = &abort;
    options.waiting = [&](const std::string&) {
      if (!waiting.HasBeenNotified()) waiting.Notify();
    };
    auto group = ProcessGroupCollective::Create(options);
    EXPECT_EQ(group.status().code(), absl::StatusCode::kCancelled) << group.status();
    EXPECT_TRUE(waiting.HasBeenNotified()) << rank;
    aborter.join();
  }
}

TEST(ProcessGroupCollectiveTest, AProcessWithoutTheGenerationKeyIsRefusedAndToldWhy) {
  const int port = FreeLoopbackPort();
  constexpr char kKey[] = "0f3c9a5e71d24b8c";
  // Rank 0 of a world of 2 holds the key and waits for its rank 1.
  absl::StatusOr<std::unique_ptr<ProcessGroupCollective>> rank0;
  std::thread host([&] {
    ProcessGroupOptions options = Rank(0, 2, port);
    options.key = kKey;
    rank0 = ProcessGroupCollective::Create(options);
  });
  // A process that knows the address, the prefix and the rank, but not the key, is refused.
  ProcessGroupOptions intruder = Rank(1, 2, port);
  intruder.key = "not-the-key";
  auto refused = ProcessGroupCollective::Create(intruder);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << refused.status();
  EXPECT_NE(refused.status().message().find("does not hold this generation's key"),
            std::string::npos)
      << refused.status();
  // So is one without any key (a group started by hand without --rendezvous-key).
  auto keyless = ProcessGroupCollective::Create(Rank(1, 2, port));
  EXPECT_EQ(keyless.status().code(), absl::StatusCode::kPermissionDenied) << keyless.status();
  // The real rank 1 still joins, and the group works.
  ProcessGroupOptions options = Rank(1, 2, port);
  options.key = kKey;
  auto rank1 = ProcessGroupCollective::Create(options);
  host.join();
  ASSERT_TRUE(rank0.ok()) << rank0.status();
  ASSERT_TRUE(rank1.ok()) << rank1.status();
  std::thread peer([&] {
    at::Tensor t = at::full({3}, 2.0f);
    EXPECT_TRUE((*rank1)->AllReduceSum(t).ok());
    EXPECT_TRUE(at::equal(t, at::full({3}, 3.0f)));
  });
  at::Tensor t = at::full({3}, 1.0f);
  EXPECT_TRUE((*rank0)->AllReduceSum(t).ok());
  EXPECT_TRUE(at::equal(t, at::full({3}, 3.0f)));
  peer.join();
}

TEST(ProcessGroupCollectiveTest, ARankZeroWithAnotherKeyFormsNoGroupAndSaysWhatItRefused) {
  const int port = FreeLoopbackPort();
  std::atomic<bool> abort{false};
  absl::Status rank1;
  std::thread joiner([&] {
    ProcessGroupOptions options = Rank(1, 2, port);
    options.key = "key-of-generation-3";
    rank1 = ProcessGroupCollective::Create(options).status();
    abort = true;  // rank 0 has answered: end its wait
  });
  ProcessGroupOptions options = Rank(0, 2, port);
  options.key = "key-of-generation-2";
  options.abort = &abort;
  auto rank0 = ProcessGroupCollective::Create(options);
  joiner.join();
  EXPECT_EQ(rank1.code(), absl::StatusCode::kPermissionDenied) << rank1;
  EXPECT_NE(rank1.message().find("rank 0 refused this rank"), std::string::npos) << rank1;
  EXPECT_EQ(rank0.status().code(), absl::StatusCode::kCancelled) << rank0.status();
  EXPECT_NE(rank0.status().message().find("1 of 2 ranks joined"), std::string::npos)
      << rank0.status();
  EXPECT_NE(rank0.status().message().find("refused 1 knock"), std::string::npos) << rank0.status();
}

TEST(ProcessGroupCollectiveTest, GroupsWithDifferentStorePrefixesNeverMeet) {
  const int port = FreeLoopbackPort();
  std::thread stale([&] {
    ProcessGroupOptions options = Rank(1, 2, port);
    options.store_prefix = "run/g0/";
    options.rendezvous_timeout = absl::Seconds(2);
    EXPECT_FALSE(ProcessGroupCollective::Create(options).ok()) << "joined another generation";
  });
  ProcessGroupOptions options = Rank(0, 2, port);
  options.store_prefix = "run/g1/";
  options.rendezvous_timeout = absl::Seconds(2);
  auto group = ProcessGroupCollective::Create(options);
  EXPECT_EQ(group.status().code(), absl::StatusCode::kDeadlineExceeded) << group.status();
  stale.join();
}

TEST(ProcessGroupCollectiveTest, ACollectiveFailsWhenAPeerIsGone) {
  const int port = FreeLoopbackPort();
  std::thread peer([&] {
    auto group = ProcessGroupCollective::Create(Rank(1, 2, port));
    ASSERT_TRUE(group.ok()) << group.status();
    at::Tensor t = at::ones({4});
    ASSERT_TRUE((*group)->AllReduceSum(t).ok());
    // Leaves: its group (and its sockets) go away.
  });
  ProcessGroupOptions options = Rank(0, 2, port);
  options.collective_timeout = absl::Seconds(10);
  auto group = ProcessGroupCollective::Create(options);
  ASSERT_TRUE(group.ok()) << group.status();
  at::Tensor t = at::ones({4});
  ASSERT_TRUE((*group)->AllReduceSum(t).ok());
  peer.join();
  auto start = std::chrono::steady_clock::now();
  absl::Status status = (*group)->AllReduceSum(t);
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.code() == absl::StatusCode::kUnavailable ||
              status.code() == absl::StatusCode::kDeadlineExceeded)
      << status;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(ProcessGroupCollectiveTest, RefusesARankOutsideTheWorld) {
  EXPECT_EQ(ProcessGroupCollective::Create(Rank(2, 2, 1234)).status().code(),
            absl::StatusCode::kInvalidArgument);
  ProcessGroupOptions no_port = Rank(0, 1, 0);
  EXPECT_EQ(ProcessGroupCollective::Create(no_port).status().code(),
            absl::StatusCode::kInvalidArgument);
#ifndef SAE_WITH_NCCL
  ProcessGroupOptions nccl = Rank(0, 1, 1234);
  nccl.backend = CollectiveBackend::kNccl;
  EXPECT_EQ(ProcessGroupCollective::Create(nccl).status().code(),
            absl::StatusCode::kInvalidArgument);
#endif
}

// ---- One data-parallel step equals one single-process step on the whole batch ----

sparse::TrainerOptions Options(sparse::Architecture architecture) {
  sparse::TrainerOptions o;
  o.sae.architecture = architecture;
  o.sae.d_in = 24;
  o.sae.d_sae = 96;
  o.sae.k = 6;
  o.seed = 5;
  o.b_dec_init = sparse::BDecInit::kGeometricMedian;
  o.lr = 1e-3;
  o.lr_schedule = sparse::LrSchedule::kConstantWithWarmup;
  o.lr_warm_up_steps = 2;
  o.total_steps = 8;
  o.l1_coefficient = 5e-3;
  o.use_ghost_grads = architecture == sparse::Architecture::kStandard;
  o.dead_feature_window = 1;  // features die quickly, so ghost grads and AuxK take part
  o.dead_tokens_threshold = 64;
  o.feature_sampling_window = 3;
  o.resample_dead_features = architecture == sparse::Architecture::kStandard;
  o.resample_batches = 2;
  o.train_batch_size = 64;
  // SAELens 6 architectures.
  o.sae.matryoshka_widths = {16, 48, 96};
  o.topk_threshold_lr = 0.1;
  o.jumprelu_init_threshold = 0.2;
  o.jumprelu_bandwidth = 0.5;
  o.l0_coefficient = 1e-2;
  o.pre_act_loss_coefficient = 1e-2;
  return o;
}

struct Trajectory {
  std::vector<sparse::StepMetrics> metrics;
  std::vector<sparse::SaeParameters> params;  // after each step (copies)
};

sparse::SaeParameters Copy(const sparse::SaeParameters& p) { return p.Clone(); }

// Batches [steps][64, 24], a sample for b_dec, and resampling batches: the same for every run.
struct Data {
  std::vector<at::Tensor> batches;
  at::Tensor sample;
  std::vector<at::Tensor> resample;
};

Data MakeData(int steps) {
  at::manual_seed(11);
  Data data;
  // Sparse-ish inputs with a non-zero mean, so that b_dec, ghost grads and resampling matter.
  for (int i = 0; i < steps; ++i) {
    data.batches.push_back(at::relu(at::randn({64, 24})) * 2 + 0.5);
  }
  data.sample = at::relu(at::randn({200, 24})) * 2 + 0.5;
  for (int i = 0; i < 16; ++i) data.resample.push_back(at::randn({64, 24}));
  return data;
}

// The seeded initial parameters, with a third of the features silenced by a very negative
// encoder bias: they never fire, so the dead-feature paths (ghost gradients, AuxK, resampling)
// take part from the first steps.
sparse::SaeParameters InitialParameters(const sparse::TrainerOptions& options) {
  sparse::SaeParameters params =
      sparse::SparseAutoencoder(options.sae, options.seed, options.jumprelu_init_threshold)
          .params();
  at::Tensor bias = params.b_enc.defined() ? params.b_enc : params.b_gate;
  bias.narrow(0, 0, options.sae.d_sae / 3).fill_(-100.0f);
  return params;
}

Trajectory Train(const sparse::TrainerOptions& options, const Data& data, sparse::Collective* group,
                 int rank, int world_size) {
  Trajectory out;
  sparse::SaeTrainer trainer(options, InitialParameters(options), group);
  EXPECT_TRUE(trainer.InitializeDecoderBias(rank == 0 ? data.sample : at::Tensor()).ok());
  size_t next_resample = 0;
  sparse::BatchSource source = [&]() -> absl::StatusOr<at::Tensor> {
    return data.resample.at(next_resample++);
  };
  for (const at::Tensor& global : data.batches) {
    const int64_t share = global.size(0) / world_size;
    at::Tensor mine = global.narrow(0, rank * share, share).contiguous();
    auto m = trainer.Step(mine, source);
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) break;
    out.metrics.push_back(*m);
    out.params.push_back(Copy(trainer.sae().params()));
  }
  return out;
}

// Within 1e-5, relative to the magnitude for metrics far above 1 (a float32 sum of thousands
// of terms is exact to about 1e-7 of its size, whatever the order of the terms).
testing::AssertionResult Near(double a, double b) {
  const double tol = 1e-5 * std::max(1.0, std::abs(b));
  if (std::abs(a - b) <= tol) return testing::AssertionSuccess();
  return testing::AssertionFailure() << a << " vs " << b << " (tolerance " << tol << ")";
}

void ExpectNear(const sparse::StepMetrics& a, const sparse::StepMetrics& b, int step) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.tokens, b.tokens) << "step " << step;
  EXPECT_TRUE(Near(a.overall_loss, b.overall_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.mse_loss, b.mse_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.l1_loss, b.l1_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.ghost_grad_loss, b.ghost_grad_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.aux_loss, b.aux_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.l0_loss, b.l0_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.pre_act_loss, b.pre_act_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.inner_mse_loss, b.inner_mse_loss)) << "step " << step;
  EXPECT_TRUE(Near(a.topk_threshold, b.topk_threshold)) << "step " << step;
  EXPECT_TRUE(Near(a.l0, b.l0)) << "step " << step;
  EXPECT_TRUE(Near(a.explained_variance, b.explained_variance)) << "step " << step;
  EXPECT_TRUE(Near(a.explained_variance_std, b.explained_variance_std)) << "step " << step;
  EXPECT_TRUE(Near(a.l2_norm, b.l2_norm)) << "step " << step;
  EXPECT_TRUE(Near(a.l2_ratio, b.l2_ratio)) << "step " << step;
  EXPECT_NEAR(a.learning_rate, b.learning_rate, 1e-12) << "step " << step;
  EXPECT_EQ(a.dead_features, b.dead_features) << "step " << step;
  EXPECT_TRUE(Near(a.mean_passes_since_fired, b.mean_passes_since_fired)) << "step " << step;
  ASSERT_EQ(a.sparsity.has_value(), b.sparsity.has_value()) << "step " << step;
  if (a.sparsity) {
    EXPECT_TRUE(
        Near(a.sparsity->mean_log10_feature_sparsity, b.sparsity->mean_log10_feature_sparsity));
    EXPECT_EQ(a.sparsity->resampled, b.sparsity->resampled) << "step " << step;
  }
}

double MaxDifference(const sparse::SaeParameters& a, const sparse::SaeParameters& b) {
  double worst = 0;
  const auto named_a = a.Named(), named_b = b.Named();
  EXPECT_EQ(named_a.size(), named_b.size());
  for (size_t i = 0; i < std::min(named_a.size(), named_b.size()); ++i) {
    worst = std::max(worst, (named_a[i].second - named_b[i].second).abs().max().item<double>());
  }
  if (a.topk_threshold.defined()) {
    worst = std::max(worst, std::abs(a.topk_threshold.item<double>() -
                                     b.topk_threshold.item<double>()));
  }
  return worst;
}

void ExpectDataParallelEqualsSingleProcess(sparse::Architecture architecture) {
  const sparse::TrainerOptions options = Options(architecture);
  const Data data = MakeData(static_cast<int>(options.total_steps));
  const Trajectory single = Train(options, data, nullptr, 0, 1);
  ASSERT_EQ(single.metrics.size(), data.batches.size());

  std::vector<Trajectory> ranks(2);
  RunGroup(2, [&](ProcessGroupCollective& group) {
    ranks[group.rank()] = Train(options, data, &group, group.rank(), group.world_size());
  });
  bool some_dead = false, some_resampled = false;
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_EQ(ranks[rank].metrics.size(), single.metrics.size()) << "rank " << rank;
    for (size_t step = 0; step < single.metrics.size(); ++step) {
      SCOPED_TRACE(testing::Message() << "rank " << rank << " step " << step + 1);
      ExpectNear(ranks[rank].metrics[step], single.metrics[step], static_cast<int>(step + 1));
      EXPECT_LE(MaxDifference(ranks[rank].params[step], single.params[step]), 1e-5);
      some_dead |= single.metrics[step].dead_features > 0;
      const auto& sparsity = single.metrics[step].sparsity;
      some_resampled |= sparsity.has_value() && sparsity->resampled > 0;
    }
  }
  // The comparison covered the paths that need more than the gradient all-reduce.
  EXPECT_TRUE(some_dead);
  if (options.resample_dead_features) EXPECT_TRUE(some_resampled);
}

TEST(DataParallelStepTest, StandardSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kStandard);
}

TEST(DataParallelStepTest, TopKSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kTopK);
}

// BatchTopK selects over the global batch: the ranks agree on its (k * B)-th activation.
TEST(DataParallelStepTest, BatchTopKSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kBatchTopK);
}

TEST(DataParallelStepTest, MatryoshkaBatchTopKSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kMatryoshkaBatchTopK);
}

TEST(DataParallelStepTest, JumpReLUSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kJumpReLU);
}

TEST(DataParallelStepTest, GatedSaeOnTwoGlooRanksEqualsOneProcessOnTheWholeBatch) {
  ExpectDataParallelEqualsSingleProcess(sparse::Architecture::kGated);
}

}  // namespace
}  // namespace sae::trainer
