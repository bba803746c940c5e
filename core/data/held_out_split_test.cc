// Held-out documents (DatasetOptions::held_out_fraction): drawn over the whole dataset by a hash
// of where each document starts, never read by training shards, the same on every run.
#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "core/data/token_file_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kEot = 50256;

// Distinct documents: document i starts with the id i, so its content says which it is.
std::vector<std::vector<int32_t>> NumberedDocuments(int count, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<std::vector<int32_t>> documents(count);
  for (int i = 0; i < count; ++i) {
    documents[i].push_back(i);
    documents[i].resize(1 + random() % 40, 0);
    for (size_t t = 1; t < documents[i].size(); ++t) {
      documents[i][t] = static_cast<int32_t>(random() % kEot);
    }
  }
  return documents;
}

std::vector<int32_t> StreamOf(const std::vector<std::vector<int32_t>>& documents) {
  std::vector<int32_t> stream;
  for (const std::vector<int32_t>& document : documents) {
    stream.insert(stream.end(), document.begin(), document.end());
    stream.push_back(kEot);
  }
  return stream;
}

struct Layout {
  std::string name;
  std::string path;
};

// The same documents in every token layout of docs/data.md: a .bin stream, a 1-D .npy stream,
// a folder of .bin files, JSONL rows and a 2-D .npy of rows (rows padded to 48 ids).
std::vector<Layout> WriteLayouts(const support::TempDir& folder,
                                 const std::vector<std::vector<int32_t>>& documents) {
  std::vector<Layout> layouts;
  layouts.push_back(
      {".bin stream", folder.Write("one.bin", *EncodeNanoGptBin(StreamOf(documents)))});
  layouts.push_back({"1-D .npy stream",
                     folder.Write("one.npy", *EncodeNpy(StreamOf(documents), NpyElement::kInt32))});
  const size_t per_file = documents.size() / 5 + 1;
  for (size_t begin = 0, file = 0; begin < documents.size(); begin += per_file, ++file) {
    std::vector<std::vector<int32_t>> part(
        documents.begin() + begin,
        documents.begin() + std::min(begin + per_file, documents.size()));
    folder.Write(absl::StrCat("folder/", file, ".bin"), *EncodeNanoGptBin(StreamOf(part)));
  }
  layouts.push_back({"folder of .bin", folder.path() + "/folder"});
  std::string jsonl;
  std::vector<int32_t> rows;
  for (std::vector<int32_t> row : documents) {
    row.resize(48, 1);
    absl::StrAppend(&jsonl, "{\"tokens\": [", absl::StrJoin(row, ", "), "]}\n");
    rows.insert(rows.end(), row.begin(), row.end());
  }
  layouts.push_back({"JSONL rows", folder.Write("rows.jsonl", jsonl)});
  layouts.push_back(
      {"2-D .npy rows", folder.Write("rows.npy", *EncodeNpy(rows, NpyElement::kUint16, 1, 48))});
  return layouts;
}

std::shared_ptr<const Dataset> OpenOrDie(const std::string& path, double held_out_fraction) {
  DatasetOptions options;
  options.dataset_path = path;
  options.context_size = 16;
  options.held_out_fraction = held_out_fraction;
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return dataset.ok() ? *dataset : nullptr;
}

// The documents of epoch 0 of a shard: the number of each (its first id) and its global start.
struct Read {
  std::vector<int32_t> numbers;
  std::vector<uint64_t> starts;
};

Read EpochZero(const std::shared_ptr<const Dataset>& dataset, uint32_t shard,
               uint32_t shard_count) {
  Read read;
  auto stream = DocumentStream::Open(dataset, shard, shard_count);
  EXPECT_TRUE(stream.ok()) << stream.status();
  if (!stream.ok()) return read;
  Document document;
  while (true) {
    absl::Status status = (*stream)->Next(&document);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok() || document.position.epoch > 0) break;
    read.numbers.push_back(static_cast<int32_t>(document.tokens[0]));
    read.starts.push_back(dataset->file_begin(document.position.file_index) +
                          document.position.offset);
  }
  return read;
}

TEST(HeldOutDocumentsTest, AreNeverReadByTrainingShardsWhichTogetherReadAllTheOthers) {
  support::TempDir folder;
  const std::vector<std::vector<int32_t>> documents = NumberedDocuments(300, 5);
  for (const Layout& layout : WriteLayouts(folder, documents)) {
    std::shared_ptr<const Dataset> dataset = OpenOrDie(layout.path, 0.2);
    ASSERT_NE(dataset, nullptr);
    // Every document, where it starts, and which side of the split its start draws.
    const Read unsplit = EpochZero(OpenOrDie(layout.path, 0), 0, 1);
    ASSERT_EQ(unsplit.numbers.size(), documents.size()) << layout.name;
    std::set<int32_t> expected_held_out, expected_trained;
    for (size_t i = 0; i < unsplit.numbers.size(); ++i) {
      (dataset->IsHeldOut(unsplit.starts[i]) ? expected_held_out : expected_trained)
          .insert(unsplit.numbers[i]);
    }
    const Read held_out = EpochZero(dataset, Dataset::kHeldOutShard, 1);
    EXPECT_EQ(std::set<int32_t>(held_out.numbers.begin(), held_out.numbers.end()),
              expected_held_out)
        << layout.name;
    EXPECT_EQ(held_out.numbers.size(), expected_held_out.size()) << layout.name;
    for (uint32_t shard_count : {1u, 3u, 7u}) {
      SCOPED_TRACE(absl::StrCat(layout.name, ", ", shard_count, " shards"));
      std::vector<int32_t> trained;
      for (uint32_t shard = 0; shard < shard_count; ++shard) {
        const Read read = EpochZero(dataset, shard, shard_count);
        trained.insert(trained.end(), read.numbers.begin(), read.numbers.end());
      }
      // In file order, each document once, and none of the held-out ones.
      EXPECT_TRUE(std::is_sorted(trained.begin(), trained.end()));
      EXPECT_EQ(std::set<int32_t>(trained.begin(), trained.end()), expected_trained);
      EXPECT_EQ(trained.size(), expected_trained.size());
    }
  }
}

TEST(HeldOutDocumentsTest, AreSpreadOverTheWholeDatasetInAboutTheFraction) {
  support::TempDir folder;
  const int count = 2000;
  const std::string path =
      folder.Write("one.bin", *EncodeNanoGptBin(StreamOf(NumberedDocuments(count, 9))));
  for (double fraction : {0.05, 0.2}) {
    SCOPED_TRACE(fraction);
    const Read held_out = EpochZero(OpenOrDie(path, fraction), Dataset::kHeldOutShard, 1);
    const double expected = fraction * count;
    EXPECT_GT(held_out.numbers.size(), 0.7 * expected);
    EXPECT_LT(held_out.numbers.size(), 1.3 * expected);
    // Every tenth of the dataset holds some, and none holds more than twice its share.
    std::vector<int> per_tenth(10, 0);
    for (int32_t number : held_out.numbers) ++per_tenth[number * 10 / count];
    for (int tenth = 0; tenth < 10; ++tenth) {
      EXPECT_GT(per_tenth[tenth], 0) << "tenth " << tenth;
      EXPECT_LT(per_tenth[tenth], 2 * expected / 10) << "tenth " << tenth;
    }
  }
}

TEST(HeldOutDocumentsTest, AreTheSameOnEveryRunAndEveryMachine) {
  // splitmix64's first outputs for seed 0 (Vigna's splitmix64.c): fixed integers, not a
  // property of this machine.
  EXPECT_EQ(Dataset::HeldOutDraw(0), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(Dataset::HeldOutDraw(1), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(Dataset::HeldOutDraw(2), 0x06c45d188009454fULL);  // 0.0265 x 2^64
  EXPECT_EQ(Dataset::HeldOutDraw(3), 0xf88bb8a8724c81ecULL);
  support::TempDir folder;
  const std::string path =
      folder.Write("one.bin", *EncodeNanoGptBin(StreamOf(NumberedDocuments(200, 3))));
  EXPECT_TRUE(OpenOrDie(path, 0.05)->IsHeldOut(2));
  EXPECT_FALSE(OpenOrDie(path, 0.02)->IsHeldOut(2));
  EXPECT_FALSE(OpenOrDie(path, 0.5)->IsHeldOut(0));
  const Read first = EpochZero(OpenOrDie(path, 0.1), Dataset::kHeldOutShard, 1);
  const Read second = EpochZero(OpenOrDie(path, 0.1), Dataset::kHeldOutShard, 1);
  ASSERT_FALSE(first.numbers.empty());
  EXPECT_EQ(first.numbers, second.numbers);
  EXPECT_EQ(first.starts, second.starts);
  // A larger fraction holds out a superset: the draws are compared with a higher threshold.
  const Read more = EpochZero(OpenOrDie(path, 0.3), Dataset::kHeldOutShard, 1);
  EXPECT_TRUE(std::includes(more.numbers.begin(), more.numbers.end(), first.numbers.begin(),
                            first.numbers.end()));
  // The split is part of the data's identity: cursors of the unsplit data do not apply.
  EXPECT_NE(OpenOrDie(path, 0.1)->fingerprint(), OpenOrDie(path, 0)->fingerprint());
  EXPECT_NE(OpenOrDie(path, 0.1)->fingerprint(), OpenOrDie(path, 0.3)->fingerprint());
}

TEST(HeldOutDocumentsTest, OfAOneDocumentDatasetAreNoneAndReadingThemSaysSo) {
  support::TempDir folder;
  std::shared_ptr<const Dataset> dataset =
      OpenOrDie(folder.Write("one.bin", *EncodeNanoGptBin(StreamOf(NumberedDocuments(1, 1)))), 0.5);
  EXPECT_EQ(EpochZero(dataset, 0, 1).numbers.size(), 1u);
  absl::StatusOr<std::unique_ptr<DocumentStream>> stream =
      DocumentStream::Open(dataset, Dataset::kHeldOutShard, 1);
  ASSERT_TRUE(stream.ok()) << stream.status();
  Document document;
  absl::Status status = (*stream)->Next(&document);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("holds out no document"));
}

TEST(HeldOutDocumentsTest, AreAnErrorToReadWhenNothingIsHeldOut) {
  support::TempDir folder;
  std::shared_ptr<const Dataset> dataset =
      OpenOrDie(folder.Write("one.bin", *EncodeNanoGptBin(StreamOf(NumberedDocuments(10, 3)))), 0);
  absl::StatusOr<std::unique_ptr<DocumentStream>> stream =
      DocumentStream::Open(dataset, Dataset::kHeldOutShard, 1);
  ASSERT_FALSE(stream.ok());
  EXPECT_THAT(stream.status().message(), HasSubstr("holds out nothing"));
}

}  // namespace
}  // namespace sae::data
