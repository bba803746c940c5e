#include "core/data/activation_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "core/data/token_file_format.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using ::testing::HasSubstr;

class ActivationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const model::Gpt2Config c = support::TinyConfig();
    model_ = *model::Gpt2Model::FromWeights(model::RandomGpt2Weights(c, 3), {});
    // A token stream of documents of random lengths, delimited by <|endoftext|>.
    std::mt19937 rng(5);
    std::vector<int32_t> tokens;
    for (int doc = 0; doc < 200; ++doc) {
      int len = 5 + static_cast<int>(rng() % 40);
      for (int i = 0; i < len; ++i) tokens.push_back(static_cast<int32_t>(rng() % 50000));
      tokens.push_back(50256);
    }
    DatasetOptions options;
    options.dataset_path = folder_.Write("tokens.bin", *EncodeNanoGptBin(tokens));
    options.context_size = 16;
    dataset_ = *Dataset::Open(options, nullptr);
  }

  ActivationStoreOptions Options(const char* hook, bool shuffle) {
    ActivationStoreOptions o;
    o.hook = *model::ParseHookPoint(hook, 2);
    o.store_batch_size = 4;
    o.buffer.capacity = 4 * 4 * 16;  // four forwards' worth
    o.buffer.shuffle = shuffle;
    o.buffer.seed = 9;
    return o;
  }

  // Activations of the shard's next `n` contexts, computed directly.
  at::Tensor Direct(ContextShard& shard, const char* hook, int64_t n) {
    std::vector<int32_t> contexts;
    EXPECT_TRUE(shard.NextBatch(n, &contexts).ok());
    at::Tensor tokens = at::from_blob(contexts.data(), {n, 16}, at::kInt).to(at::kLong);
    model::ForwardRequest request;
    request.capture = {*model::ParseHookPoint(hook, 2)};
    auto r = model_->Forward(tokens, request);
    return r->activations.at(hook).reshape({n * 16, -1});
  }

  support::TempDir folder_;
  std::unique_ptr<model::Gpt2Model> model_;
  std::shared_ptr<const Dataset> dataset_;
};

TEST_F(ActivationStoreTest, FifoServesTheHookActivationsOfTheShardInOrder) {
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                        Options("blocks.1.hook_resid_pre", false));
  EXPECT_EQ(store->d_in(), 32);
  auto shard = *ContextShard::Open(dataset_, 0, 1);
  at::Tensor expected = Direct(*shard, "blocks.1.hook_resid_pre", 24);
  std::vector<at::Tensor> got;
  for (int i = 0; i < 12; ++i) got.push_back(*store->NextBatch(32));
  EXPECT_TRUE(at::allclose(at::cat(got), expected, 1e-5, 1e-6));
}

// Several hooks in one forward (a run of many SAEs): each hook's columns come in the order a
// store of that hook alone serves, shuffled or not.
TEST_F(ActivationStoreTest, MoreHooksServeEachHooksColumnsAsItsOwnStoreWould) {
  for (bool shuffle : {false, true}) {
    ActivationStoreOptions both = Options("blocks.0.hook_resid_pre", shuffle);
    both.more_hooks = {*model::ParseHookPoint("blocks.1.mlp.hook_post", 2)};
    auto together = *ActivationStore::Create(model_.get(), dataset_, 0, 1, both);
    auto first = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                          Options("blocks.0.hook_resid_pre", shuffle));
    auto second = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                           Options("blocks.1.mlp.hook_post", shuffle));
    ASSERT_EQ(together->d_in(), first->d_in() + second->d_in());
    EXPECT_TRUE(at::equal(*together->InitialSample(48),
                          at::cat({*first->InitialSample(48), *second->InitialSample(48)}, 1)));
    for (int i = 0; i < 10; ++i) {
      at::Tensor batch = *together->NextBatch(32);
      at::Tensor a = *first->NextBatch(32);
      at::Tensor b = *second->NextBatch(32);
      EXPECT_TRUE(at::equal(batch.narrow(1, 0, a.size(1)), a)) << "shuffle " << shuffle;
      EXPECT_TRUE(at::equal(batch.narrow(1, a.size(1), b.size(1)), b)) << "shuffle " << shuffle;
    }
  }
}

TEST_F(ActivationStoreTest, ShuffledServesEveryActivationOnceOutOfOrder) {
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                        Options("blocks.0.hook_mlp_out", true));
  std::vector<at::Tensor> got;
  for (int i = 0; i < 8; ++i) got.push_back(*store->NextBatch(32));
  at::Tensor served = at::cat(got);
  auto shard = *ContextShard::Open(dataset_, 0, 1);
  at::Tensor generated = Direct(*shard, "blocks.0.hook_mlp_out", 4 * 6);  // six forwards so far
  EXPECT_EQ(store->contexts_generated(), 24);
  // Every served row matches a distinct generated row (rows at BOS positions are equal, so
  // matching is greedy over unused rows).
  at::Tensor distances = at::cdist(served, generated);
  auto d = distances.accessor<float, 2>();
  std::vector<bool> used(generated.size(0), false);
  int matched = 0;
  for (int64_t i = 0; i < served.size(0); ++i) {
    for (int64_t j = 0; j < generated.size(0); ++j) {
      if (!used[j] && d[i][j] < 1e-4) {
        used[j] = true;
        ++matched;
        break;
      }
    }
  }
  EXPECT_EQ(matched, served.size(0));
  EXPECT_FALSE(at::allclose(served, generated.narrow(0, 0, served.size(0))));
}

TEST_F(ActivationStoreTest, FifoResumePointContinuesExactly) {
  auto options = Options("blocks.1.hook_resid_mid", false);
  auto straight = *ActivationStore::Create(model_.get(), dataset_, 0, 1, options);
  std::vector<at::Tensor> all;
  for (int i = 0; i < 20; ++i) all.push_back(*straight->NextBatch(24));

  auto first = *ActivationStore::Create(model_.get(), dataset_, 0, 1, options);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(first->NextBatch(24).ok());
  ActivationResumePoint point = first->resume_point();
  EXPECT_GT(point.skip_rows, 0);  // 7 * 24 is not a multiple of a forward's 64 rows
  auto decoded = ActivationResumePoint::FromBytes(point.ToBytes());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  auto second = *ActivationStore::Create(model_.get(), dataset_, 0, 1, options, &*decoded);
  for (int i = 7; i < 20; ++i) {
    at::Tensor b = *second->NextBatch(24);
    EXPECT_TRUE(at::allclose(b, all[i], 1e-5, 1e-6)) << "batch " << i;
  }
}

TEST_F(ActivationStoreTest, ShuffledResumePointIsTheGenerationFrontier) {
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                        Options("blocks.0.hook_resid_post", true));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(store->NextBatch(32).ok());
  ActivationResumePoint point = store->resume_point();
  EXPECT_EQ(point.skip_rows, 0);
  EXPECT_EQ(point.cursor, store->frontier());
  EXPECT_EQ(point.cursor.contexts_served, static_cast<uint64_t>(store->contexts_generated()));
}

TEST_F(ActivationStoreTest, PerHeadHooksKeepOneHeadOrAllFlattened) {
  auto one = Options("blocks.0.attn.hook_z", false);
  one.head_index = 2;
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1, one);
  EXPECT_EQ(store->d_in(), 8);
  auto shard = *ContextShard::Open(dataset_, 0, 1);
  at::Tensor z = Direct(*shard, "blocks.0.attn.hook_z", 4).view({64, 4, 8});
  EXPECT_TRUE(at::allclose(store->InitialSample(64)->view({64, 8}), z.select(1, 2)));
  auto all = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                      Options("blocks.0.attn.hook_z", false));
  EXPECT_EQ(all->d_in(), 32);
  one.head_index = 7;
  auto bad = ActivationStore::Create(model_.get(), dataset_, 0, 1, one);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("hook_point_head_index 7"));
}

TEST_F(ActivationStoreTest, InitialSampleIsTheFirstRowsAndStaysInTheStream) {
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                        Options("blocks.1.hook_resid_pre", false));
  at::Tensor sample = *store->InitialSample(100);
  EXPECT_EQ(sample.size(0), 100);
  at::Tensor first = *store->NextBatch(32);
  EXPECT_TRUE(at::equal(first, sample.narrow(0, 0, 32)));
}

TEST_F(ActivationStoreTest, BackgroundGenerationFeedsConsumersAndStopsCleanly) {
  auto store = *ActivationStore::Create(model_.get(), dataset_, 0, 1,
                                        Options("blocks.1.hook_resid_pre", true));
  store->StartBackground();
  for (int i = 0; i < 10; ++i) {
    auto batch = store->buffer().TakeFor(32, absl::Seconds(30));
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->size(0), 32);
  }
  store->StopBackground();
  EXPECT_TRUE(store->background_status().ok());
  EXPECT_LE(store->buffer().fill().stored, store->buffer().options().capacity);
}

TEST_F(ActivationStoreTest, ContextsLongerThanTheModelAreRejected) {
  DatasetOptions options;
  options.dataset_path = dataset_->files()[0].path;
  options.context_size = 65;
  auto long_dataset = *Dataset::Open(options, nullptr);
  auto store = ActivationStore::Create(model_.get(), long_dataset, 0, 1,
                                       Options("blocks.1.hook_resid_pre", false));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("exceeds the model's n_ctx of 64"));
}

}  // namespace
}  // namespace sae::data
