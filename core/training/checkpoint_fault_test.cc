// Faults of a trainer's checkpoint folder: the disk fills while a checkpoint is written (a
// small tmpfs; skipped where mount is refused), and a byte of a written checkpoint flips.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/token_file_format.h"
#include "core/model/gpt2_weights.h"
#include "core/training/checkpoint.h"
#include "core/training/local_training.h"
#include "core/util/files.h"
#include "support/random_gpt2.h"
#include "support/temp_dir.h"
#include "support/tmpfs.h"

namespace sae::training {
namespace {

// A tiny GPT-2 and token file, and the run of local_training_test (20 steps of 64 tokens).
class CheckpointFaultTest : public ::testing::Test {
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

  config::RunConfig Config(const std::string& extra = "") {
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
                     "b_dec_init_method: mean\n",
                     extra);
    auto config = config::ParseRunConfig(yaml, "test.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    return *config;
  }

  const support::TempDir temp_{"checkpoint_fault_test"};
  const std::string dir_ = temp_.path();
};

// The bytes a checkpoint folder takes on a tmpfs (every file rounded up to 4 KiB pages).
int64_t PagesOf(const std::string& dir) {
  int64_t total = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) total += (static_cast<int64_t>(entry.file_size()) + 4095) / 4096;
  }
  return total * 4096;
}

// checkpoint_path on a tmpfs with room for one checkpoint and a half: the first checkpoint is
// written, the second fails with ResourceExhausted naming the folder and what to do, nothing of
// it is left (no step folder, no .partial), the run stops, and it resumes from the first one.
TEST_F(CheckpointFaultTest, ACheckpointOnAFullDiskFailsCleanlyAndTheRunResumesFromTheLastOne) {
  LocalTrainingOptions measure;
  measure.output_dir = dir_ + "/measure";
  ASSERT_TRUE(RunLocalTraining(Config("n_checkpoints: 4\n"), measure).ok());
  const int64_t checkpoint_bytes = PagesOf(dir_ + "/measure/checkpoints/" + CheckpointName(5));
  support::Tmpfs disk(dir_ + "/small", checkpoint_bytes * 3 / 2);
  if (!disk.mounted()) GTEST_SKIP() << disk.error();

  LocalTrainingOptions options;
  options.output_dir = dir_ + "/out";
  const std::string root = disk.path() + "/checkpoints";
  auto result = RunLocalTraining(
      Config(absl::StrCat("n_checkpoints: 4\ncheckpoint_path: ", root, "\n")), options);
  ASSERT_FALSE(result.ok()) << "a second checkpoint fit on a disk with room for one and a half";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kResourceExhausted) << result.status();
  const std::string message(result.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr(root + "/" + CheckpointName(10)));
  EXPECT_THAT(message, ::testing::HasSubstr("No space left on device"));
  EXPECT_THAT(message, ::testing::HasSubstr("The file system of " + root + " is full"));
  EXPECT_THAT(message, ::testing::HasSubstr("free space there"));
  std::printf("checkpoint of %lld bytes on a tmpfs of %lld: %s\n",
              static_cast<long long>(checkpoint_bytes),
              static_cast<long long>(checkpoint_bytes * 3 / 2), message.c_str());
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    left.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(left, ::testing::ElementsAre(CheckpointName(5)));
  EXPECT_TRUE(VerifyCheckpointChecksums(root + "/" + CheckpointName(5)).ok());

  LocalTrainingOptions resumed;
  resumed.output_dir = dir_ + "/resumed";
  resumed.resume_dir = root + "/" + CheckpointName(5);
  auto finished = RunLocalTraining(Config(), resumed);
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_EQ(finished->steps, 20);
}

// A byte flipped in a checkpoint's state.safetensors: the resume is refused before anything is
// loaded, naming the checkpoint and the file; with the byte restored it resumes.
TEST_F(CheckpointFaultTest, AFlippedByteInACheckpointIsRefusedOnResumeNamingTheFile) {
  LocalTrainingOptions straight;
  straight.output_dir = dir_ + "/straight";
  ASSERT_TRUE(RunLocalTraining(Config("shuffle: false\nn_checkpoints: 2\n"), straight).ok());
  const std::string checkpoint = dir_ + "/straight/checkpoints/" + CheckpointName(10);
  const std::string state = checkpoint + "/state.safetensors";
  const int64_t offset = static_cast<int64_t>(std::filesystem::file_size(state)) - 100;
  auto flip = [&] {
    std::fstream file(state, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(offset);
    char c = 0;
    file.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    file.seekp(offset);
    file.write(&c, 1);
    ASSERT_TRUE(file);
  };
  flip();

  LocalTrainingOptions resumed;
  resumed.output_dir = dir_ + "/resumed";
  resumed.resume_dir = checkpoint;
  auto result = RunLocalTraining(Config("shuffle: false\n"), resumed);
  ASSERT_FALSE(result.ok()) << "a damaged checkpoint was loaded";
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss) << result.status();
  const std::string message(result.status().message());
  EXPECT_THAT(message, ::testing::HasSubstr("checkpoint " + checkpoint + " is damaged"));
  EXPECT_THAT(message, ::testing::HasSubstr("state.safetensors does not match its SHA-256"));
  std::printf("resume from the damaged checkpoint: %s\n", message.c_str());

  flip();
  result = RunLocalTraining(Config("shuffle: false\n"), resumed);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 20);
}

}  // namespace
}  // namespace sae::training
