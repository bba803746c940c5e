// Text datasets through the real GPT-2 tokenizer (scripts/fetch-assets.sh installs its files).
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/data/context_packing.h"
#include "core/data/context_shard.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "core/data/token_file_format.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/real_tokenizer.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using tokenizer::Gpt2Tokenizer;
using tokenizer::kEndOfText;

class TextDatasetsTest : public support::RealTokenizerTest {
 protected:
  std::shared_ptr<const Dataset> Open(const std::string& path, int64_t context_size,
                                      const std::string& separator = "<|endoftext|>") {
    DatasetOptions options;
    options.dataset_path = path;
    options.context_size = context_size;
    options.text_document_separator = separator;
    absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, tokenizer());
    EXPECT_TRUE(dataset.ok()) << dataset.status();
    return dataset.ok() ? *dataset : nullptr;
  }

  // The text of the documents of one epoch of shard `shard` of `shards`.
  std::vector<std::string> ReadEpoch(std::shared_ptr<const Dataset> dataset, uint32_t shard = 0,
                                     uint32_t shards = 1) {
    std::vector<std::string> texts;
    auto stream = DocumentStream::Open(dataset, shard, shards);
    EXPECT_TRUE(stream.ok()) << stream.status();
    if (!stream.ok()) return texts;
    while (true) {
      Document document;
      absl::Status status = (*stream)->Next(&document);
      EXPECT_TRUE(status.ok()) << status;
      if (!status.ok() || document.position.epoch > 0) break;
      texts.push_back(*tokenizer()->Decode(document.tokens.ToVector()));
    }
    return texts;
  }

  std::vector<std::vector<int32_t>> ReadContexts(std::shared_ptr<const Dataset> dataset,
                                                 size_t count) {
    std::vector<std::vector<int32_t>> contexts;
    auto shard = ContextShard::Open(dataset, 0, 1);
    EXPECT_TRUE(shard.ok()) << shard.status();
    if (!shard.ok()) return contexts;
    std::vector<int32_t> context;
    while (contexts.size() < count && (*shard)->Next(&context).ok()) contexts.push_back(context);
    return contexts;
  }
};

const std::vector<std::string>& Documents() {
  static const std::vector<std::string> documents = {
      "Hello world, this is the first document.\nIt has two lines.",
      "Second document: ünïcödé, 日本語のテキスト, and an emoji 🙂.",
      "  Leading spaces, a trailing line break, and digits 1234567.\n",
      "x",
      "A longer paragraph that overflows a context: the quick brown fox jumps over the lazy dog "
      "while the lazy dog sleeps; sphinx of black quartz, judge my vow. Pack my box with five "
      "dozen liquor jugs. How vexingly quick daft zebras jump!",
      "It's 50% off -- don't miss it.\n\n\nThree blank lines above.",
  };
  return documents;
}

TEST_F(TextDatasetsTest, TextFileJsonlTextFolderOfFilesAndTokenFileGiveTheSameContexts) {
  support::TempDir folder;
  const std::vector<std::string>& documents = Documents();
  std::string jsonl;
  std::vector<int32_t> stream;
  std::vector<std::vector<int32_t>> encoded;
  for (size_t i = 0; i < documents.size(); ++i) {
    jsonl += nlohmann::json{{"text", documents[i]}, {"meta", i}}.dump() + "\n";
    encoded.push_back(tokenizer()->Encode(documents[i]));
    stream.insert(stream.end(), encoded.back().begin(), encoded.back().end());
    stream.push_back(kEndOfText);
    folder.Write(absl::StrCat("folder/doc", i, ".txt"), documents[i]);
  }
  std::vector<std::string> paths = {
      folder.Write("lf.txt", absl::StrJoin(documents, "\n<|endoftext|>\n") + "\n<|endoftext|>\n"),
      folder.Write("crlf.txt",
                   "<|endoftext|>\r\n" + absl::StrJoin(documents, "\r\n<|endoftext|>\r\n")),
      folder.Write("text.jsonl", jsonl),
      folder.path() + "/folder",
      folder.Write("tokens.bin", *EncodeNanoGptBin(stream)),
  };
  const int64_t context_size = 12;
  std::vector<std::vector<int32_t>> expected =
      PackDocuments(PackingOptions{context_size, true, kEndOfText}, encoded);
  ASSERT_GT(expected.size(), 5u);
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    std::shared_ptr<const Dataset> dataset = Open(path, context_size);
    ASSERT_NE(dataset, nullptr);
    EXPECT_EQ(dataset->is_tokenized(), path.find(".bin") != std::string::npos);
    EXPECT_EQ(ReadEpoch(dataset), documents);
    EXPECT_EQ(ReadContexts(dataset, expected.size()), expected);
  }
}

TEST_F(TextDatasetsTest, SeparatorLinesSplitDocumentsAndBelongToNone) {
  support::TempDir folder;
  // As the fortune files of the Debian package `fortunes` are laid out.
  std::string path = folder.Write(
      "fortunes", "%\nFirst fortune.\n  -- Someone\n%\n%\nSecond: 100% sure.\n%x\r\n%\r\nThird\n%");
  std::shared_ptr<const Dataset> dataset = Open(path, 8, "%");
  ASSERT_NE(dataset, nullptr);
  EXPECT_EQ(ReadEpoch(dataset), (std::vector<std::string>{"First fortune.\n  -- Someone",
                                                          "Second: 100% sure.\n%x", "Third"}));
  std::shared_ptr<const Dataset> whole = Open(path, 8, /*separator=*/"");
  ASSERT_NE(whole, nullptr);
  EXPECT_EQ(ReadEpoch(whole).size(), 1u);
}

TEST_F(TextDatasetsTest, ShardsOfOneLargeTextFileSplitAtDocumentBoundariesAndResumeExactly) {
  support::TempDir folder;
  std::mt19937 random(21);
  std::vector<std::string> documents;
  for (int i = 0; i < 150; ++i) {
    const std::string& base = Documents()[random() % Documents().size()];
    documents.push_back(
        absl::StrCat("Document ", i, ". ", base.substr(0, random() % (base.size() + 1))));
  }
  std::string path = folder.Write("large.txt", absl::StrJoin(documents, "\n<|endoftext|>\n"));
  std::shared_ptr<const Dataset> dataset = Open(path, 16);
  ASSERT_NE(dataset, nullptr);
  for (uint32_t shards : {1u, 2u, 7u, 16u}) {
    std::vector<std::string> concatenated;
    for (uint32_t shard = 0; shard < shards; ++shard) {
      std::vector<std::string> texts = ReadEpoch(dataset, shard, shards);
      concatenated.insert(concatenated.end(), texts.begin(), texts.end());
    }
    EXPECT_EQ(concatenated, documents) << shards << " shards";
  }

  // Interrupted at random contexts (mid-document ones included) and resumed from the bytes of
  // the cursor: the same contexts, across epochs.
  std::vector<std::vector<int32_t>> uninterrupted;
  {
    auto shard = ContextShard::Open(dataset, 2, 3);
    ASSERT_TRUE(shard.ok());
    std::vector<int32_t> context;
    for (int i = 0; i < 500; ++i) {
      ASSERT_TRUE((*shard)->Next(&context).ok());
      uninterrupted.push_back(context);
    }
    EXPECT_GE((*shard)->epoch(), 2u);
  }
  std::vector<std::vector<int32_t>> resumed;
  auto shard = ContextShard::Open(dataset, 2, 3);
  ASSERT_TRUE(shard.ok());
  std::unique_ptr<ContextShard> reader = std::move(*shard);
  std::vector<int32_t> context;
  for (int i = 0; i < 500; ++i) {
    if (random() % 7 == 0) {
      std::string bytes = reader->cursor().ToBytes();
      reader.reset();
      auto again = ContextShard::Resume(Open(path, 16), *ShardCursor::FromBytes(bytes));
      ASSERT_TRUE(again.ok()) << again.status();
      reader = std::move(*again);
    }
    ASSERT_TRUE(reader->Next(&context).ok());
    resumed.push_back(context);
  }
  EXPECT_EQ(resumed, uninterrupted);
}

TEST_F(TextDatasetsTest,
       HeldOutDocumentsOfTextAndJsonlAreSkippedByTrainingAndReadByTheHeldOutShard) {
  support::TempDir folder;
  std::vector<std::string> documents;
  std::string jsonl;
  for (int i = 0; i < 200; ++i) {
    documents.push_back(absl::StrCat("Document ", i, ". ", Documents()[i % Documents().size()]));
    jsonl += nlohmann::json{{"text", documents.back()}}.dump() + "\n";
  }
  for (const std::string& path :
       {folder.Write("large.txt", absl::StrJoin(documents, "\n<|endoftext|>\n")),
        folder.Write("large.jsonl", jsonl)}) {
    SCOPED_TRACE(path);
    DatasetOptions options;
    options.dataset_path = path;
    options.context_size = 16;
    options.held_out_fraction = 0.2;
    absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, tokenizer());
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    // The side of each document follows from where it starts in the file.
    std::vector<std::string> expected_trained, expected_held_out;
    auto all = DocumentStream::Open(Open(path, 16), 0, 1);
    ASSERT_TRUE(all.ok());
    for (size_t i = 0; i < documents.size(); ++i) {
      Document document;
      ASSERT_TRUE((*all)->Next(&document).ok());
      (*dataset)->IsHeldOut(document.position.offset) ? expected_held_out.push_back(documents[i])
                                                      : expected_trained.push_back(documents[i]);
    }
    EXPECT_GT(expected_held_out.size(), 20u);
    EXPECT_LT(expected_held_out.size(), 60u);
    EXPECT_EQ(ReadEpoch(*dataset, Dataset::kHeldOutShard, 1), expected_held_out);
    std::vector<std::string> trained;
    for (uint32_t shard = 0; shard < 3; ++shard) {
      std::vector<std::string> texts = ReadEpoch(*dataset, shard, 3);
      trained.insert(trained.end(), texts.begin(), texts.end());
    }
    EXPECT_EQ(trained, expected_trained);
  }
}

}  // namespace
}  // namespace sae::data
