// Shards: disjoint, covering, endless over epochs, and resumable from a few bytes.
#include "core/data/context_shard.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "core/data/shard_cursor.h"
#include "core/data/token_file_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kEot = 50256;

std::vector<std::vector<int32_t>> RandomDocuments(int count, uint32_t seed, int max_length = 90) {
  std::mt19937 random(seed);
  std::vector<std::vector<int32_t>> documents(count);
  for (std::vector<int32_t>& document : documents) {
    document.resize(1 + random() % max_length);
    for (int32_t& id : document) id = static_cast<int32_t>(random() % kEot);
  }
  return documents;
}

std::string BinOf(const std::vector<std::vector<int32_t>>& documents) {
  std::vector<int32_t> stream;
  for (const std::vector<int32_t>& document : documents) {
    stream.insert(stream.end(), document.begin(), document.end());
    stream.push_back(kEot);
  }
  return *EncodeNanoGptBin(stream);
}

std::string JsonlOf(const std::vector<std::vector<int32_t>>& documents) {
  std::string jsonl;
  for (const std::vector<int32_t>& document : documents) {
    absl::StrAppend(&jsonl, "{\"tokens\": [", absl::StrJoin(document, ", "), "]}\n");
  }
  return jsonl;
}

// Datasets of the same documents in the layouts sharding treats differently.
struct Layout {
  std::string name;
  std::string path;
  bool rows;
};

std::vector<Layout> WriteLayouts(const support::TempDir& folder,
                                 const std::vector<std::vector<int32_t>>& documents) {
  std::vector<Layout> layouts;
  layouts.push_back({"one .bin", folder.Write("one.bin", BinOf(documents)), false});
  std::vector<std::vector<int32_t>> rows = documents;
  for (std::vector<int32_t>& row : rows) row.resize(std::max<size_t>(row.size(), 64), 1);
  layouts.push_back({"JSONL rows", folder.Write("rows.jsonl", JsonlOf(rows)), true});
  size_t per_file = documents.size() / 7 + 1;
  for (size_t begin = 0, file = 0; begin < documents.size(); begin += per_file, ++file) {
    std::vector<std::vector<int32_t>> part(
        documents.begin() + begin,
        documents.begin() + std::min(begin + per_file, documents.size()));
    folder.Write(absl::StrCat("folder/", file, ".bin"), BinOf(part));
  }
  layouts.push_back({"folder of .bin", folder.path() + "/folder", false});
  return layouts;
}

std::shared_ptr<const Dataset> OpenOrDie(const std::string& path, int64_t context_size = 16,
                                         bool prepend_bos = true) {
  DatasetOptions options;
  options.dataset_path = path;
  options.context_size = context_size;
  options.prepend_bos = prepend_bos;
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return dataset.ok() ? *dataset : nullptr;
}

TEST(ContextShardsTest, AreDisjointAndTogetherCoverEveryDocumentOnce) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> documents = RandomDocuments(120, 11);
  for (const Layout& layout : WriteLayouts(folder, documents)) {
    std::shared_ptr<const Dataset> dataset = OpenOrDie(layout.path);
    ASSERT_NE(dataset, nullptr);
    std::vector<std::vector<int32_t>> all;
    {
      auto stream = DocumentStream::Open(dataset, 0, 1);
      ASSERT_TRUE(stream.ok());
      Document document;
      while ((*stream)->Next(&document).ok() && document.position.epoch == 0) {
        all.push_back(document.tokens.ToVector());
      }
    }
    ASSERT_EQ(all.size(), documents.size()) << layout.name;
    for (uint32_t shard_count : {2u, 3u, 5u, 8u, 13u}) {
      SCOPED_TRACE(absl::StrCat(layout.name, ", ", shard_count, " shards"));
      // Shards own contiguous ranges, so shard 0, then 1, ... read the documents in order.
      std::vector<std::vector<int32_t>> concatenated;
      for (uint32_t shard = 0; shard < shard_count; ++shard) {
        auto stream = DocumentStream::Open(dataset, shard, shard_count);
        ASSERT_TRUE(stream.ok()) << stream.status();
        Document document;
        size_t owned = 0;
        while (true) {
          absl::Status status = (*stream)->Next(&document);
          ASSERT_TRUE(status.ok()) << status;
          if (document.position.epoch > 0) break;
          concatenated.push_back(document.tokens.ToVector());
          ++owned;
        }
        EXPECT_GT(owned, 0u);
      }
      EXPECT_EQ(concatenated, all);
    }
  }
}

// Reads `count` contexts of a shard, stopping at each of `stops` (sorted context counts) to
// serialise the cursor, drop everything, reopen the dataset and resume from the bytes.
std::vector<std::vector<int32_t>> ReadWithRestarts(const std::string& path, int64_t context_size,
                                                   bool prepend_bos, uint32_t shard,
                                                   uint32_t shard_count, int count,
                                                   const std::vector<int>& stops) {
  std::vector<std::vector<int32_t>> contexts;
  std::shared_ptr<const Dataset> dataset = OpenOrDie(path, context_size, prepend_bos);
  auto opened = ContextShard::Open(dataset, shard, shard_count);
  EXPECT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<ContextShard> reader = std::move(*opened);
  size_t next_stop = 0;
  for (int i = 0; i < count; ++i) {
    if (next_stop < stops.size() && stops[next_stop] == i) {
      ++next_stop;
      std::string bytes = reader->cursor().ToBytes();
      reader.reset();
      dataset = OpenOrDie(path, context_size, prepend_bos);
      absl::StatusOr<ShardCursor> cursor = ShardCursor::FromBytes(bytes);
      EXPECT_TRUE(cursor.ok()) << cursor.status();
      auto resumed = ContextShard::Resume(dataset, *cursor);
      EXPECT_TRUE(resumed.ok()) << resumed.status();
      if (!resumed.ok()) return contexts;
      reader = std::move(*resumed);
      EXPECT_EQ(reader->cursor().ToBytes(), bytes);
    }
    std::vector<int32_t> context;
    absl::Status status = reader->Next(&context);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) break;
    contexts.push_back(context);
  }
  return contexts;
}

TEST(ContextShardsTest, StreamInterruptedAtRandomPointsAndResumedFromItsCursorIsTheSameStream) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> documents = RandomDocuments(60, 12);
  std::mt19937 random(13);
  for (const Layout& layout : WriteLayouts(folder, documents)) {
    for (int64_t context_size : {7, 16, 64}) {
      for (bool prepend_bos : {true, false}) {
        for (uint32_t shard_count : {1u, 3u}) {
          SCOPED_TRACE(absl::StrCat(layout.name, ", context ", context_size, ", prepend_bos ",
                                    prepend_bos, ", ", shard_count, " shards"));
          // Enough contexts for several epochs of a shard.
          const int count = 400;
          std::vector<std::vector<int32_t>> uninterrupted = ReadWithRestarts(
              layout.path, context_size, prepend_bos, shard_count - 1, shard_count, count, {});
          ASSERT_EQ(uninterrupted.size(), static_cast<size_t>(count));
          std::vector<int> stops;
          for (int i = 0; i < count; ++i) {
            if (random() % 9 == 0) stops.push_back(i);
          }
          EXPECT_EQ(ReadWithRestarts(layout.path, context_size, prepend_bos, shard_count - 1,
                                     shard_count, count, stops),
                    uninterrupted);
        }
      }
    }
  }
}

TEST(ContextShardsTest, ResumeRightAtAnEpochBoundaryContinuesInTheNextEpoch) {
  support::TempDir folder;
  // Rows: one context per document, so the boundary falls exactly between two contexts.
  std::vector<std::vector<int32_t>> rows = RandomDocuments(5, 14);
  for (std::vector<int32_t>& row : rows) row.resize(8, 3);
  std::string path = folder.Write("rows.jsonl", JsonlOf(rows));
  std::shared_ptr<const Dataset> dataset = OpenOrDie(path, 8);
  auto shard = ContextShard::Open(dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*shard)->Next(&context).ok());
  ShardCursor at_boundary = (*shard)->cursor();
  EXPECT_EQ(at_boundary.epoch, 0u);
  EXPECT_EQ(at_boundary.contexts_served, 5u);
  auto resumed = ContextShard::Resume(dataset, *ShardCursor::FromBytes(at_boundary.ToBytes()));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_TRUE((*resumed)->Next(&context).ok());
  EXPECT_EQ(context, rows[0]);
  EXPECT_EQ((*resumed)->cursor().epoch, 1u);
}

TEST(ContextShardsTest, ExhaustedShardStartsANewEpochAndCountsIt) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> rows = RandomDocuments(4, 15);
  for (std::vector<int32_t>& row : rows) row.resize(8, 3);
  std::shared_ptr<const Dataset> dataset = OpenOrDie(folder.Write("rows.jsonl", JsonlOf(rows)), 8);
  auto shard = ContextShard::Open(dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_TRUE((*shard)->Next(&context).ok());
      EXPECT_EQ(context, rows[i]);
      EXPECT_EQ((*shard)->cursor().contexts_served, epoch * rows.size() + i + 1);
    }
  }
  EXPECT_EQ((*shard)->cursor().epoch, 2u);  // at the end of epoch 2, before epoch 3 begins
  ASSERT_TRUE((*shard)->Next(&context).ok());
  EXPECT_EQ((*shard)->epoch(), 3u);
}

TEST(ContextShardsTest, PackingContinuesAcrossTheEpochBoundary) {
  support::TempDir folder;
  std::shared_ptr<const Dataset> dataset =
      OpenOrDie(folder.Write("a.bin", BinOf({{1, 2, 3}, {4, 5}})), 4);
  auto shard = ContextShard::Open(dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<std::vector<int32_t>> contexts(4);
  for (std::vector<int32_t>& context : contexts) ASSERT_TRUE((*shard)->Next(&context).ok());
  EXPECT_EQ(contexts,
            (std::vector<std::vector<int32_t>>{
                {kEot, 1, 2, 3}, {kEot, 4, 5, kEot}, {kEot, 1, 2, 3}, {kEot, 4, 5, kEot}}));
}

TEST(ShardCursorTest, SerialisesToAFewBytesAndBack) {
  ShardCursor cursor;
  cursor.shard_index = 3;
  cursor.shard_count = 8;
  cursor.dataset_fingerprint = 0x0123456789abcdefULL;
  cursor.epoch = 2;
  cursor.file_index = 17;
  cursor.offset = 123456789;
  cursor.tokens_into_document = 300;
  cursor.contexts_served = 1000000;
  std::string bytes = cursor.ToBytes();
  EXPECT_LE(bytes.size(), 32u);
  absl::StatusOr<ShardCursor> back = ShardCursor::FromBytes(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, cursor);
  for (size_t length = 0; length < bytes.size(); ++length) {
    EXPECT_FALSE(ShardCursor::FromBytes(bytes.substr(0, length)).ok()) << length;
  }
  EXPECT_FALSE(ShardCursor::FromBytes(bytes + "x").ok());
  std::string other_version = bytes;
  other_version[0] = 9;
  EXPECT_THAT(ShardCursor::FromBytes(other_version).status().message(), HasSubstr("version 9"));
}

TEST(ShardCursorTest, EachContextMovesTheCursorFurther) {
  support::TempDir folder;
  std::shared_ptr<const Dataset> dataset =
      OpenOrDie(folder.Write("a.bin", BinOf(RandomDocuments(20, 16))), 8);
  auto shard = ContextShard::Open(dataset, 1, 2);
  ASSERT_TRUE(shard.ok());
  ShardCursor previous = (*shard)->cursor();
  std::vector<int32_t> context;
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE((*shard)->Next(&context).ok());
    ShardCursor now = (*shard)->cursor();
    EXPECT_TRUE(now.IsAfter(previous)) << now.DebugString() << " vs " << previous.DebugString();
    EXPECT_FALSE(previous.IsAfter(now));
    previous = now;
  }
  ShardCursor other_shard = previous;
  other_shard.shard_index = 0;
  EXPECT_FALSE(previous.IsAfter(other_shard));
  EXPECT_FALSE(other_shard.IsAfter(previous));
}

TEST(ContextShardsTest, CursorOfOtherDataIsRejected) {
  support::TempDir folder;
  std::shared_ptr<const Dataset> first =
      OpenOrDie(folder.Write("a.bin", BinOf(RandomDocuments(10, 17))), 8);
  std::shared_ptr<const Dataset> second =
      OpenOrDie(folder.Write("b.bin", BinOf(RandomDocuments(11, 18))), 8);
  auto shard = ContextShard::Open(first, 0, 1);
  ASSERT_TRUE(shard.ok());
  auto resumed = ContextShard::Resume(second, (*shard)->cursor());
  EXPECT_EQ(resumed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(resumed.status().message(), HasSubstr("belongs to other data"));
}

TEST(ContextShardsTest, ShardThatOwnsNoDocumentSaysSoAndSuggestsFewerShards) {
  support::TempDir folder;
  // Two long documents; the middle shards' ranges hold no document start.
  std::shared_ptr<const Dataset> dataset =
      OpenOrDie(folder.Write("a.bin", BinOf(RandomDocuments(2, 19, 400))), 8);
  int empty_shards = 0;
  for (uint32_t shard_index = 0; shard_index < 8; ++shard_index) {
    auto shard = ContextShard::Open(dataset, shard_index, 8);
    ASSERT_TRUE(shard.ok());
    std::vector<int32_t> context;
    absl::Status status = (*shard)->Next(&context);
    if (!status.ok()) {
      ++empty_shards;
      EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_THAT(status.message(), HasSubstr("holds no documents"));
      EXPECT_THAT(status.message(), HasSubstr("use fewer shards"));
    }
  }
  EXPECT_GE(empty_shards, 5);
  EXPECT_FALSE(ContextShard::Open(dataset, 8, 8).ok());
}

}  // namespace
}  // namespace sae::data
