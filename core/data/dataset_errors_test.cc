// Bad input: each a clear error naming the file and, where there is one, the line or offset.
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/context_shard.h"
#include "core/data/dataset.h"
#include "core/data/token_file_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::data {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

DatasetOptions Options(const std::string& path, int64_t context_size = 4) {
  DatasetOptions options;
  options.dataset_path = path;
  options.context_size = context_size;
  return options;
}

// The status of opening `path` and reading its first context.
absl::Status OpenAndRead(const DatasetOptions& options) {
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  if (!dataset.ok()) return dataset.status();
  absl::StatusOr<std::unique_ptr<ContextShard>> shard = ContextShard::Open(*dataset, 0, 1);
  if (!shard.ok()) return shard.status();
  std::vector<int32_t> context;
  return (*shard)->Next(&context);
}

absl::Status OpenAndRead(const std::string& path, int64_t context_size = 4) {
  return OpenAndRead(Options(path, context_size));
}

TEST(DatasetErrorsTest, MissingPathIsNotFoundNamingIt) {
  support::TempDir folder;
  std::string path = folder.path() + "/no_such_file.jsonl";
  absl::Status status = OpenAndRead(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path), HasSubstr("does not exist")));
}

TEST(DatasetErrorsTest, HubDatasetNameSaysHubDatasetsCannotBeDownloaded) {
  absl::Status status = OpenAndRead("NeelNanda/c4-10k");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("Hugging Face Hub"));
}

TEST(DatasetErrorsTest, GlobMatchingNothingIsNotFoundNamingIt) {
  support::TempDir folder;
  std::string glob = folder.path() + "/*.bin";
  absl::Status status = OpenAndRead(glob);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(glob), HasSubstr("matches no files")));
}

TEST(DatasetErrorsTest, UnreadableFileIsAnErrorNamingIt) {
  support::TempDir folder;
  // A symbolic link to itself cannot be opened, whoever runs the test.
  std::string loop = folder.path() + "/loop.jsonl";
  ASSERT_EQ(::symlink(loop.c_str(), loop.c_str()), 0);
  absl::Status status = OpenAndRead(loop);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), AllOf(HasSubstr(loop), HasSubstr("symbolic links")));
  // Inside a folder dataset too.
  folder.Write("data/a.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n");
  std::string inner_loop = folder.path() + "/data/b.jsonl";
  ASSERT_EQ(::symlink(inner_loop.c_str(), inner_loop.c_str()), 0);
  status = OpenAndRead(folder.path() + "/data");
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(inner_loop));
}

TEST(DatasetErrorsTest, FileWithoutReadPermissionIsPermissionDeniedNamingIt) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "running as root: chmod 000 does not stop root from reading "
                    "(UnreadableFileIsAnErrorNamingIt covers unreadable files for root)";
  }
  support::TempDir folder;
  std::string locked = folder.Write("data.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n");
  ASSERT_EQ(::chmod(locked.c_str(), 0), 0);
  absl::Status status = OpenAndRead(locked);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr(locked));
}

TEST(DatasetErrorsTest, GlobMatchingAFolderIsAnErrorNamingIt) {
  support::TempDir folder;
  folder.Write("a.bin/inside.bin", *EncodeNanoGptBin({1, 2}));
  absl::Status status = OpenAndRead(folder.path() + "/*.bin");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(folder.path() + "/a.bin"), HasSubstr("a glob must match files")));
}

TEST(DatasetErrorsTest, JsonlLineWithoutTheFieldNamesFileAndLine) {
  support::TempDir folder;
  std::string path = folder.Write(
      "data.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n{\"tokens\": [5, 6, 7, 8]}\n{\"text\": \"x\"}\n");
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(Options(path), nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  auto shard = ContextShard::Open(*dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  EXPECT_TRUE((*shard)->Next(&context).ok());
  EXPECT_TRUE((*shard)->Next(&context).ok());
  absl::Status status = (*shard)->Next(&context);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path + ":3:"), HasSubstr("no \"tokens\" or \"input_ids\" field")));
}

TEST(DatasetErrorsTest, FirstJsonlLineWithNeitherTextNorTokensNamesFileAndLine) {
  support::TempDir folder;
  std::string path = folder.Write("data.jsonl", "\n\n{\"content\": \"x\"}\n");
  absl::Status status = OpenAndRead(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path + ":3:"), HasSubstr("\"text\"")));
}

TEST(DatasetErrorsTest, MalformedJsonLineNamesFileAndLine) {
  support::TempDir folder;
  std::string path =
      folder.Write("data.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n{\"tokens\": [5, 6,\n");
  DatasetOptions options = Options(path);
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  auto shard = ContextShard::Open(*dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  EXPECT_TRUE((*shard)->Next(&context).ok());
  absl::Status status = (*shard)->Next(&context);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path + ":2:"), HasSubstr("malformed JSON")));
}

// Found by fuzzing (fuzz/regressions/dataset_jsonl): a number beyond a double's range made the
// JSON parser throw out_of_range, which ended the process.
TEST(DatasetErrorsTest, NumberBeyondADoublesRangeInJsonlIsAnErrorNamingTheLine) {
  support::TempDir folder;
  std::string path = folder.Write("data.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n"
                                                "{\"tokens\": [5, 1e999, 7, 8]}\n");
  DatasetOptions options = Options(path);
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  auto shard = ContextShard::Open(*dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  absl::Status status = (*shard)->Next(&context);
  if (status.ok()) status = (*shard)->Next(&context);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(path + ":2:"), HasSubstr("malformed JSON"),
                                      HasSubstr("number overflow")))
      << status;
  // The first line decides the format: there too it is an error, not an abort.
  path = folder.Write("first.jsonl", "{\"tokens\": [1e999]}\n");
  absl::StatusOr<std::shared_ptr<const Dataset>> first = Dataset::Open(Options(path), nullptr);
  EXPECT_FALSE(first.ok());
  EXPECT_THAT(first.status().message(), HasSubstr(path + ":1:")) << first.status();
}

TEST(DatasetErrorsTest, TokenIdBeyondTheVocabularyInJsonlNamesFileAndLine) {
  support::TempDir folder;
  std::string path =
      folder.Write("data.jsonl", "{\"tokens\": [1, 2, 3, 4]}\n\n{\"tokens\": [5, 50257, 7, 8]}\n");
  DatasetOptions options = Options(path);
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(options, nullptr);
  ASSERT_TRUE(dataset.ok());
  auto shard = ContextShard::Open(*dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  EXPECT_TRUE((*shard)->Next(&context).ok());
  absl::Status status = (*shard)->Next(&context);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path + ":3:"), HasSubstr("token id 50257"), HasSubstr("[0, 50257)")));
}

TEST(DatasetErrorsTest, TokenIdBeyondTheVocabularyInATokenFileNamesFileAndOffset) {
  support::TempDir folder;
  std::vector<int32_t> ids = {1, 2, 50256, 3, 60000, 4, 50256};
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"nanogpt.bin", *EncodeNanoGptBin(ids)},
           {"llmc.bin", *EncodeLlmcBin(ids)},
           {"ids.npy", *EncodeNpy(ids, NpyElement::kInt32)}}) {
    SCOPED_TRACE(name);
    std::string path = folder.Write(name, bytes);
    absl::Status status = OpenAndRead(path, 8);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), AllOf(HasSubstr(path), HasSubstr("token id 60000"),
                                        HasSubstr("token index 4"), HasSubstr("byte offset")));
  }
  std::string negative = folder.Write("negative.npy", *EncodeNpy({1, -5, 2}, NpyElement::kInt32));
  EXPECT_THAT(OpenAndRead(negative).message(), HasSubstr("token id -5"));
  DatasetOptions small_vocabulary =
      Options(folder.Write("small.bin", *EncodeNanoGptBin({1, 9, 2})));
  small_vocabulary.vocab_size = 5;
  small_vocabulary.bos_token_id = 0;
  EXPECT_THAT(OpenAndRead(small_vocabulary).message(), HasSubstr("token id 9"));
}

TEST(DatasetErrorsTest, EmptyDatasetIsAnErrorNamingTheFile) {
  support::TempDir folder;
  std::string empty = folder.Write("empty.jsonl", "");
  absl::Status status = OpenAndRead(empty);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(empty), HasSubstr("empty")));

  std::string blank = folder.Write("blank.jsonl", "\n  \n\n");
  status = OpenAndRead(blank);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(blank), HasSubstr("holds no documents")));

  std::string delimiters = folder.Write("delimiters.bin", *EncodeNanoGptBin({50256, 50256}));
  status = OpenAndRead(delimiters);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(delimiters), HasSubstr("holds no documents")));

  ::mkdir((folder.path() + "/nothing").c_str(), 0755);
  status = OpenAndRead(folder.path() + "/nothing");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("/nothing"), HasSubstr("holding no files")));
}

TEST(DatasetErrorsTest, PreTokenisedRowShorterThanTheContextNamesFileAndLine) {
  support::TempDir folder;
  std::string path =
      folder.Write("rows.jsonl", "{\"tokens\": [1, 2, 3, 4, 5]}\n{\"tokens\": [1, 2]}\n");
  absl::StatusOr<std::shared_ptr<const Dataset>> dataset = Dataset::Open(Options(path), nullptr);
  ASSERT_TRUE(dataset.ok());
  auto shard = ContextShard::Open(*dataset, 0, 1);
  ASSERT_TRUE(shard.ok());
  std::vector<int32_t> context;
  EXPECT_TRUE((*shard)->Next(&context).ok());
  absl::Status status = (*shard)->Next(&context);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr(path + ":2:"), HasSubstr("holds 2 ids, fewer than context_size 4")));
  std::string npy = folder.Write(
      "rows.npy", *EncodeNpy({1, 2, 3, 4, 5, 6}, NpyElement::kUint16, 1, /*row_length=*/3));
  EXPECT_THAT(OpenAndRead(npy).message(),
              AllOf(HasSubstr(npy), HasSubstr("fewer than context_size 4")));
}

TEST(DatasetErrorsTest, MalformedTokenFilesAreErrorsNamingTheFile) {
  support::TempDir folder;
  std::string odd = folder.Write("odd.bin", std::string(5, '\1'));
  EXPECT_THAT(OpenAndRead(odd).message(), AllOf(HasSubstr(odd), HasSubstr("odd size")));
  std::string truncated_llmc = *EncodeLlmcBin({1, 2, 3, 4});
  truncated_llmc.resize(truncated_llmc.size() - 2);
  std::string llmc = folder.Write("llmc.bin", truncated_llmc);
  EXPECT_THAT(OpenAndRead(llmc).message(), AllOf(HasSubstr(llmc), HasSubstr("truncated")));
  std::string float_npy = *EncodeNpy({1, 2}, NpyElement::kInt32);
  float_npy.replace(float_npy.find("<i4"), 3, "<f4");
  std::string npy = folder.Write("float.npy", float_npy);
  EXPECT_THAT(OpenAndRead(npy).message(), AllOf(HasSubstr(npy), HasSubstr("'<f4'")));
  std::string not_npy = folder.Write("text.npy", "hello world");
  EXPECT_THAT(OpenAndRead(not_npy).message(), AllOf(HasSubstr(not_npy), HasSubstr("magic")));
}

TEST(DatasetErrorsTest, FolderMixingFormatsIsAnErrorNamingBothFiles) {
  support::TempDir folder;
  std::string bin = folder.Write("data/a.bin", *EncodeNanoGptBin({1, 2}));
  std::string jsonl = folder.Write("data/b.jsonl", "{\"tokens\": [1]}\n");
  absl::Status status = OpenAndRead(folder.path() + "/data");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(bin), HasSubstr(jsonl), HasSubstr("mixes")));
}

TEST(DatasetErrorsTest, TextWithoutATokenizerAndBadOptionsAreErrors) {
  support::TempDir folder;
  EXPECT_THAT(OpenAndRead(folder.Write("a.txt", "hello")).message(),
              HasSubstr("needs a tokenizer"));
  std::string bin = folder.Write("a.bin", *EncodeNanoGptBin({1, 2}));
  EXPECT_THAT(OpenAndRead(bin, /*context_size=*/1).message(), HasSubstr("context_size is 1"));
  EXPECT_THAT(OpenAndRead("").message(), HasSubstr("dataset_path is empty"));
}

}  // namespace
}  // namespace sae::data
