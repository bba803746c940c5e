// Every format of a pre-tokenised dataset reads the same documents; detection of
// is_dataset_tokenized and its check.
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
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int32_t kEot = 50256;

std::vector<std::vector<int32_t>> RandomDocuments(int count, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<std::vector<int32_t>> documents(count);
  for (std::vector<int32_t>& document : documents) {
    document.resize(1 + random() % 90);
    for (int32_t& id : document) id = static_cast<int32_t>(random() % kEot);
  }
  return documents;
}

// The documents as a stream the way nanoGPT writes it (each followed by EOT) or llm.c does
// (each preceded by EOT).
std::vector<int32_t> Stream(const std::vector<std::vector<int32_t>>& documents, bool eot_first) {
  std::vector<int32_t> stream;
  for (const std::vector<int32_t>& document : documents) {
    if (eot_first) stream.push_back(kEot);
    stream.insert(stream.end(), document.begin(), document.end());
    if (!eot_first) stream.push_back(kEot);
  }
  return stream;
}

std::shared_ptr<const Dataset> OpenOrDie(const DatasetOptions& options) {
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  EXPECT_TRUE(dataset.ok()) << dataset.status();
  return dataset.ok() ? *dataset : nullptr;
}

DatasetOptions Options(const std::string& path, int64_t context_size = 16) {
  DatasetOptions options;
  options.dataset_path = path;
  options.context_size = context_size;
  return options;
}

// The documents of one epoch of a single shard.
std::vector<std::vector<int32_t>> ReadEpoch(std::shared_ptr<const Dataset> dataset) {
  std::vector<std::vector<int32_t>> documents;
  auto stream = DocumentStream::Open(dataset, 0, 1);
  EXPECT_TRUE(stream.ok()) << stream.status();
  if (!stream.ok()) return documents;
  while (true) {
    Document document;
    absl::Status status = (*stream)->Next(&document);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok() || document.position.epoch > 0) break;
    documents.push_back(document.tokens.ToVector());
  }
  return documents;
}

std::vector<std::vector<int32_t>> ReadContexts(std::shared_ptr<const Dataset> dataset, int count) {
  std::vector<std::vector<int32_t>> contexts;
  auto shard = ContextShard::Open(dataset, 0, 1);
  EXPECT_TRUE(shard.ok()) << shard.status();
  if (!shard.ok()) return contexts;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> context;
    absl::Status status = (*shard)->Next(&context);
    EXPECT_TRUE(status.ok()) << status;
    if (!status.ok()) break;
    contexts.push_back(context);
  }
  return contexts;
}

TEST(DatasetFormatsTest, NanoGptLlmcAndNpyTokenFilesReadTheSameDocumentsAndContexts) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> documents = RandomDocuments(40, 1);
  std::vector<int32_t> nanogpt_stream = Stream(documents, /*eot_first=*/false);
  std::vector<int32_t> llmc_stream = Stream(documents, /*eot_first=*/true);
  std::vector<std::string> paths = {
      folder.Write("nanogpt.bin", *EncodeNanoGptBin(nanogpt_stream)),
      folder.Write("llmc.bin", *EncodeLlmcBin(llmc_stream)),
      folder.Write("v1_uint16.npy", *EncodeNpy(nanogpt_stream, NpyElement::kUint16, 1)),
      folder.Write("v2_int32.npy", *EncodeNpy(llmc_stream, NpyElement::kInt32, 2)),
  };
  std::vector<std::vector<int32_t>> expected_contexts =
      PackDocuments(PackingOptions{16, true, kEot}, documents);
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    std::shared_ptr<const Dataset> dataset = OpenOrDie(Options(path));
    ASSERT_NE(dataset, nullptr);
    EXPECT_TRUE(dataset->is_tokenized());
    EXPECT_FALSE(dataset->rows_are_contexts());
    EXPECT_EQ(ReadEpoch(dataset), documents);
    EXPECT_EQ(ReadContexts(dataset, static_cast<int>(expected_contexts.size())), expected_contexts);
  }
}

TEST(DatasetFormatsTest, LlmcHeaderIsRecognisedAndNanoGptFileIsTakenAsRawIds) {
  support::TempDir folder;
  std::vector<int32_t> stream = {kEot, 1, 2, 3, kEot, 4};
  std::shared_ptr<const Dataset> llmc =
      OpenOrDie(Options(folder.Write("a/llmc.bin", *EncodeLlmcBin(stream))));
  std::shared_ptr<const Dataset> nanogpt =
      OpenOrDie(Options(folder.Write("b/nanogpt.bin", *EncodeNanoGptBin(stream))));
  ASSERT_NE(llmc, nullptr);
  ASSERT_NE(nanogpt, nullptr);
  EXPECT_EQ(llmc->files()[0].layout.description, "llm.c .bin v1");
  EXPECT_EQ(llmc->files()[0].layout.data_offset, kLlmcHeaderBytes);
  EXPECT_EQ(nanogpt->files()[0].layout.description, "nanoGPT .bin");
  EXPECT_EQ(llmc->total_units(), 6u);
  EXPECT_EQ(nanogpt->total_units(), 6u);
  EXPECT_THAT(ReadEpoch(llmc), ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4)));
  EXPECT_THAT(ReadEpoch(nanogpt), ElementsAre(ElementsAre(1, 2, 3), ElementsAre(4)));
}

TEST(DatasetFormatsTest, FolderOfTokenFilesReadsFilesInNameOrder) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> documents = RandomDocuments(12, 2);
  for (int file = 0; file < 4; ++file) {
    std::vector<std::vector<int32_t>> part(documents.begin() + 3 * file,
                                           documents.begin() + 3 * file + 3);
    folder.Write(absl::StrCat("data/part", file, ".bin"), *EncodeNanoGptBin(Stream(part, false)));
  }
  folder.Write("data/.hidden.bin", *EncodeNanoGptBin({1, 2, 3}));
  std::shared_ptr<const Dataset> dataset = OpenOrDie(Options(folder.path() + "/data"));
  ASSERT_NE(dataset, nullptr);
  EXPECT_EQ(dataset->files().size(), 4u);
  EXPECT_EQ(ReadEpoch(dataset), documents);
  std::shared_ptr<const Dataset> globbed = OpenOrDie(Options(folder.path() + "/data/part*.bin"));
  ASSERT_NE(globbed, nullptr);
  EXPECT_EQ(ReadEpoch(globbed), documents);
}

TEST(DatasetFormatsTest, JsonlTokenRowsAndTwoDimensionalNpyRowsAreContextsTruncatedToContextSize) {
  support::TempDir folder;
  std::vector<std::vector<int32_t>> rows = RandomDocuments(6, 3);
  for (std::vector<int32_t>& row : rows) row.resize(20, 7);
  std::string jsonl;
  for (size_t i = 0; i < rows.size(); ++i) {
    absl::StrAppend(&jsonl, "{\"", i % 2 == 0 ? "tokens" : "input_ids", "\": [",
                    absl::StrJoin(rows[i], ","), "], \"id\": ", i, "}\n");
    if (i == 2) jsonl += "\n";  // blank lines hold no row
  }
  std::vector<int32_t> flat;
  for (const std::vector<int32_t>& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  std::vector<std::string> paths = {
      folder.Write("rows.jsonl", jsonl),
      folder.Write("rows.npy", *EncodeNpy(flat, NpyElement::kUint16, 1, /*row_length=*/20)),
  };
  for (const std::string& path : paths) {
    SCOPED_TRACE(path);
    std::shared_ptr<const Dataset> dataset = OpenOrDie(Options(path, /*context_size=*/16));
    ASSERT_NE(dataset, nullptr);
    EXPECT_TRUE(dataset->is_tokenized());
    EXPECT_TRUE(dataset->rows_are_contexts());
    std::vector<std::vector<int32_t>> contexts = ReadContexts(dataset, 8);
    ASSERT_EQ(contexts.size(), 8u);
    for (int i = 0; i < 8; ++i) {
      // No BOS is added and nothing is packed: row i, cut to 16 ids; then the next epoch.
      const std::vector<int32_t>& row = rows[i % rows.size()];
      EXPECT_EQ(contexts[i], std::vector<int32_t>(row.begin(), row.begin() + 16));
    }
  }
}

TEST(DatasetFormatsTest, IsDatasetTokenizedIsDetectedFromTheFiles) {
  support::TempDir folder;
  struct Case {
    std::string name;
    std::string contents;
    bool tokenized;
  };
  std::vector<Case> cases = {
      {"tokens.bin", *EncodeNanoGptBin({1, 2, kEot}), true},
      {"tokens.npy", *EncodeNpy({1, 2, kEot}, NpyElement::kInt32), true},
      {"tokens.jsonl", "\n{\"tokens\": [1, 2]}\n", true},
      {"ids.jsonl", "{\"input_ids\": [1, 2]}\n", true},
      {"text.jsonl", "{\"text\": \"hello\"}\n", false},
      {"text.txt", "hello", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    DatasetOptions options = Options(folder.Write(c.name, c.contents), 2);
    // Text needs a tokenizer to open; detection is what this checks.
    absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
    if (c.tokenized) {
      ASSERT_TRUE(dataset.ok()) << dataset.status();
      EXPECT_TRUE((*dataset)->is_tokenized());
    } else {
      EXPECT_THAT(dataset.status().message(), HasSubstr("holds text, which needs a tokenizer"));
    }
  }
}

TEST(DatasetFormatsTest, IsDatasetTokenizedThatDisagreesWithTheFilesIsAnErrorSayingSo) {
  support::TempDir folder;
  struct Case {
    std::string name;
    std::string contents;
    bool given;
  };
  std::vector<Case> cases = {
      {"tokens.bin", *EncodeNanoGptBin({1, 2, kEot}), false},
      {"tokens.npy", *EncodeNpy({1, 2}, NpyElement::kUint16), false},
      {"tokens.jsonl", "{\"tokens\": [1, 2]}\n", false},
      {"text.jsonl", "{\"text\": \"hello\"}\n", true},
      {"text.txt", "hello", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    DatasetOptions options = Options(folder.Write(c.name, c.contents), 2);
    options.is_dataset_tokenized = c.given;
    absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
    ASSERT_FALSE(dataset.ok());
    EXPECT_EQ(dataset.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(dataset.status().message(),
                HasSubstr(absl::StrCat("is_dataset_tokenized is ", c.given ? "true" : "false")));
    EXPECT_THAT(dataset.status().message(), HasSubstr(c.name));
  }
}

TEST(DatasetFormatsTest, IsDatasetTokenizedThatAgreesOpensTheDataset) {
  support::TempDir folder;
  DatasetOptions options =
      Options(folder.Write("t.jsonl", "{\"tokens\": [1, 2], \"text\": \"x\"}"), 2);
  options.is_dataset_tokenized = true;
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_TRUE((*dataset)->rows_are_contexts());
}

TEST(DatasetFormatsTest, NpyHeadersOfVersionsOneAndTwoParse) {
  std::vector<int32_t> ids = {5, 6, 7, 8, 9, 10};
  for (int version : {1, 2}) {
    for (NpyElement element : {NpyElement::kUint16, NpyElement::kInt32}) {
      std::string bytes = *EncodeNpy(ids, element, version, /*row_length=*/3);
      absl::StatusOr<TokenFileLayout> layout = ParseNpyLayout("x.npy", bytes);
      ASSERT_TRUE(layout.ok()) << layout.status();
      EXPECT_EQ(layout->data_offset % 64, 0u);
      EXPECT_EQ(layout->count, 6u);
      EXPECT_EQ(layout->row_length, 3u);
      EXPECT_EQ(layout->width, element == NpyElement::kUint16 ? 2 : 4);
    }
  }
  // As NumPy 1.x writes it for np.save(f, np.arange(3, dtype=np.uint16)).
  std::string numpy_header = "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }";
  numpy_header.append(118 - numpy_header.size() - 1, ' ');
  numpy_header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + std::string(1, char(118)) +
                      std::string(1, '\0') + numpy_header + std::string("\0\0\1\0\2\0", 6);
  absl::StatusOr<TokenFileLayout> layout = ParseNpyLayout("numpy.npy", bytes);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->data_offset, 128u);
  EXPECT_EQ(layout->count, 3u);
  EXPECT_EQ(layout->row_length, 0u);
}

}  // namespace
}  // namespace sae::data
