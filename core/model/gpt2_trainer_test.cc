// The training loop: a tiny GPT-2 with the real vocabulary learns a small corpus, resumes
// exactly, and writes a folder the engine loads.
#include "core/model/gpt2_trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/data/token_file_format.h"
#include "core/io/tensor_io.h"
#include "core/model/gpt2_model.h"
#include "support/temp_dir.h"

namespace sae::model {
namespace {

// Documents of a small language: 64 word ids spread over GPT-2's vocabulary, each followed by
// one of two successors chosen at random, so a model that reads the previous token can reach
// ln 2 nats while any model that ignores context stays near ln 64.
std::vector<std::vector<int32_t>> MarkovDocuments(int count, uint64_t seed) {
  std::mt19937_64 engine(seed);
  auto word = [](int64_t i) { return static_cast<int32_t>(101 + 773 * i); };
  std::vector<std::vector<int32_t>> documents;
  for (int d = 0; d < count; ++d) {
    std::vector<int32_t> doc;
    int64_t state = engine() % 64;
    const int length = 20 + static_cast<int>(engine() % 20);
    for (int i = 0; i < length; ++i) {
      doc.push_back(word(state));
      state = (engine() % 2 == 0) ? (5 * state + 1) % 64 : (7 * state + 3) % 64;
    }
    documents.push_back(std::move(doc));
  }
  return documents;
}

Gpt2Config TinyConfig(int context) {
  Gpt2Config c;
  c.n_layer = 1;
  c.n_embd = 16;
  c.n_head = 2;
  c.n_positions = context;
  c.vocab_size = 50257;  // the real vocabulary: the unembedding is most of the cost
  return c;
}

// The documents as a nanoGPT .bin, loaded as `saectl model train` loads a dataset: the
// dataset's held-out documents (drawn over the whole file, data::Dataset::IsHeldOut) are the
// held-out part.
TrainingCorpus MarkovCorpus(int documents, int context, double held_out_fraction = 0.05) {
  support::TempDir folder;
  std::vector<int32_t> stream;
  for (const std::vector<int32_t>& document : MarkovDocuments(documents, 11)) {
    stream.insert(stream.end(), document.begin(), document.end());
    stream.push_back(50256);
  }
  TrainingCorpusOptions options;
  options.dataset_path = folder.Write("markov.bin", *data::EncodeNanoGptBin(stream));
  options.context_size = context;
  options.held_out_fraction = held_out_fraction;
  auto corpus = TrainingCorpus::Load(options, nullptr);
  EXPECT_TRUE(corpus.ok()) << corpus.status();
  return *std::move(corpus);
}

TEST(TrainGpt2Test, TinyModelWithTheRealVocabularyLearnsBelowTheUnigramEntropy) {
  support::TempDir folder;
  const TrainingCorpus corpus = MarkovCorpus(600, 32);
  Gpt2TrainingOptions options;
  options.config = TinyConfig(32);
  options.seed = 1;
  options.batch_size = 8;
  options.total_tokens = 150 * 8 * 32;  // 150 steps
  options.lr = 1e-2;
  options.min_lr = 1e-3;
  options.out_dir = folder.path() + "/model";
  int64_t reports = 0;
  options.on_step = [&](const Gpt2StepReport& r) {
    ++reports;
    EXPECT_EQ(r.step, reports);
    EXPECT_EQ(r.total_steps, 150);
  };
  auto result = TrainGpt2(corpus, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 150);
  EXPECT_EQ(reports, 150);
  std::printf("held-out loss %.3f nats, held-out unigram entropy %.3f nats, %.0f tokens/s\n",
              result->held_out_loss, result->held_out_unigram_entropy, result->tokens_per_second);
  EXPECT_GT(result->held_out_unigram_entropy, 3.5);  // about ln 64 = 4.16
  EXPECT_LT(result->held_out_loss, result->held_out_unigram_entropy - 1.0)
      << "held-out loss " << result->held_out_loss << " vs unigram entropy "
      << result->held_out_unigram_entropy;

  // The folder is a Hugging Face GPT-2 the engine loads, with the same held-out loss.
  ModelOptions engine_options;
  engine_options.processing = Processing::kNone;
  auto engine = Gpt2Model::Load(options.out_dir, engine_options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  ForwardRequest request;
  request.loss = true;
  auto forward = (*engine)->Forward(corpus.held_out(), request);
  ASSERT_TRUE(forward.ok()) << forward.status();
  EXPECT_NEAR(forward->loss.mean().item<double>(), result->held_out_loss, 1e-4);
  EXPECT_TRUE(std::filesystem::exists(options.out_dir + "/training.json"));
}

Gpt2TrainingOptions ResumeOptions(const std::string& out) {
  Gpt2TrainingOptions options;
  options.config = TinyConfig(16);
  options.seed = 3;
  options.batch_size = 4;
  options.total_tokens = 12 * 4 * 16;  // 12 steps, more than one epoch of the corpus below
  options.warmup_steps = 3;
  options.lr = 3e-3;
  options.out_dir = out;
  return options;
}

TEST(TrainGpt2Test, ResumingFromAnInterruptionEqualsTrainingStraightThrough) {
  support::TempDir folder;
  const TrainingCorpus corpus = MarkovCorpus(20, 16, 0.2);
  ASSERT_LT(corpus.train().size(0), 12 * 4);

  Gpt2TrainingOptions straight = ResumeOptions(folder.path() + "/straight");
  ASSERT_TRUE(TrainGpt2(corpus, straight).ok());

  Gpt2TrainingOptions first = ResumeOptions(folder.path() + "/resumed");
  std::atomic<bool> stop{false};
  first.interrupt = &stop;
  first.on_step = [&](const Gpt2StepReport& r) {
    if (r.step == 4) stop = true;
  };
  // The flag is read after each step: set in the report of step 4, it stops the run after step 5.
  auto partial = TrainGpt2(corpus, first);
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_TRUE(partial->interrupted);
  EXPECT_EQ(partial->steps, 5);
  EXPECT_FALSE(std::filesystem::exists(first.out_dir + "/model.safetensors"));

  Gpt2TrainingOptions second = ResumeOptions(first.out_dir);
  second.resume = true;
  int64_t first_reported = 0;
  second.on_step = [&](const Gpt2StepReport& r) {
    if (first_reported == 0) first_reported = r.step;
  };
  auto resumed = TrainGpt2(corpus, second);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(first_reported, 6);
  EXPECT_EQ(resumed->steps, 12);

  auto a = io::LoadTensors(straight.out_dir + "/model.safetensors");
  auto b = io::LoadTensors(second.out_dir + "/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (const auto& [name, tensor] : *a) {
    EXPECT_TRUE(at::equal(tensor, b->at(name))) << name << " differs after resuming";
  }
  EXPECT_EQ(resumed->held_out_loss, TrainGpt2(corpus,
                                              [&] {
                                                Gpt2TrainingOptions again = straight;
                                                again.resume =
                                                    true;  // a finished run resumes to its end
                                                return again;
                                              }())
                                        ->held_out_loss);
}

TEST(TrainGpt2Test, RefusesToResumeWithOtherOptions) {
  support::TempDir folder;
  const TrainingCorpus corpus = MarkovCorpus(60, 16);
  Gpt2TrainingOptions options = ResumeOptions(folder.path() + "/run");
  options.total_tokens = 2 * 4 * 16;
  ASSERT_TRUE(TrainGpt2(corpus, options).ok());

  auto again = TrainGpt2(corpus, options);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), ::testing::HasSubstr("--resume"));

  options.resume = true;
  options.lr = 1e-3;
  auto other = TrainGpt2(corpus, options);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(other.status().message()), ::testing::HasSubstr("lr"));
}

TEST(TrainGpt2Test, RefusesAModelContextOtherThanTheCorpus) {
  support::TempDir folder;
  const TrainingCorpus corpus = MarkovCorpus(60, 16);
  Gpt2TrainingOptions options = ResumeOptions(folder.path() + "/run");
  options.config.n_positions = 32;
  auto result = TrainGpt2(corpus, options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(result.status().message()), ::testing::HasSubstr("n_positions"));
}

}  // namespace
}  // namespace sae::model
