#include "services/common/checkpoint_archive.h"

#include <filesystem>
#include <string>

#include "core/util/files.h"
#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::client {
namespace {

using support::TempDir;

std::string Binary(size_t size, unsigned seed) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return bytes;
}

// Reads the whole archive of `dir` in pieces of `piece` bytes.
std::string ArchiveOf(const std::string& dir, size_t piece) {
  auto reader = ArchiveReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  std::string archive, part;
  while (true) {
    absl::Status status = (*reader)->Read(piece, &part);
    EXPECT_TRUE(status.ok()) << status;
    if (part.empty()) break;
    EXPECT_LE(part.size(), piece);
    archive += part;
  }
  EXPECT_EQ(static_cast<int64_t>(archive.size()), (*reader)->total_bytes());
  return archive;
}

TEST(CheckpointArchiveTest, RoundTripsADirectoryReadAndWrittenInOddPieces) {
  TempDir source, target;
  source.Write("state.json", R"({"step": 100})");
  source.Write("state.safetensors", Binary(100000, 7));
  source.Write("sae/cfg.json", "{}");
  source.Write("sae/sae_weights.safetensors", Binary(3333, 1));
  source.Write("empty", "");

  std::string archive = ArchiveOf(source.path(), 7);
  EXPECT_EQ(archive.substr(0, 8), "SAECKPT1");
  EXPECT_EQ(archive, ArchiveOf(source.path(), 1 << 20));

  auto extractor = ArchiveExtractor::Create(target.path() + "/restored");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  for (size_t at = 0; at < archive.size(); at += 13) {
    ASSERT_TRUE((*extractor)->Append(archive.substr(at, 13)).ok());
  }
  ASSERT_TRUE((*extractor)->Finish().ok());
  EXPECT_EQ((*extractor)->files().size(), 5u);
  for (const char* name : {"state.json", "state.safetensors", "sae/cfg.json",
                           "sae/sae_weights.safetensors", "empty"}) {
    EXPECT_EQ(*ReadFile(target.path() + "/restored/" + name), *ReadFile(source.path() + "/" + name))
        << name;
  }
}

TEST(CheckpointArchiveTest, ListsFilesInByteOrderOfTheirPaths) {
  TempDir source;
  source.Write("b", "2");
  source.Write("a/z", "1");
  source.Write("C", "3");
  auto reader = ArchiveReader::Open(source.path());
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->files(), (std::vector<std::string>{"C", "a/z", "b"}));
}

TEST(CheckpointArchiveTest, ReaderReportsAMissingFolder) {
  EXPECT_TRUE(absl::IsNotFound(ArchiveReader::Open("/nonexistent/checkpoint").status()));
}

TEST(CheckpointArchiveTest, ExtractorRefusesSomethingThatIsNotAnArchive) {
  TempDir target;
  auto extractor = ArchiveExtractor::Create(target.path());
  ASSERT_TRUE(extractor.ok());
  absl::Status status = (*extractor)->Append("PK\x03\x04 a zip file");
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("SAECKPT1"), absl::string_view::npos);
}

TEST(CheckpointArchiveTest, ExtractorRefusesAPathThatClimbsOutOfTheFolder) {
  TempDir target;
  std::string archive = "SAECKPT1";
  std::string path = "../escape";
  archive += std::string("\x09\0\0\0", 4) + path + std::string("\x01\0\0\0\0\0\0\0", 8) + "x";
  auto extractor = ArchiveExtractor::Create(target.path() + "/inside");
  ASSERT_TRUE(extractor.ok());
  absl::Status status = (*extractor)->Append(archive);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_FALSE(std::filesystem::exists(target.path() + "/escape"));
}

TEST(CheckpointArchiveTest, ExtractorReportsAnArchiveCutShort) {
  TempDir source, target;
  source.Write("weights", Binary(1000, 3));
  std::string archive = ArchiveOf(source.path(), 4096);
  auto extractor = ArchiveExtractor::Create(target.path());
  ASSERT_TRUE(extractor.ok());
  ASSERT_TRUE((*extractor)->Append(archive.substr(0, archive.size() - 10)).ok());
  absl::Status status = (*extractor)->Finish();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("weights"), absl::string_view::npos) << status;
  // The half-written file never appears.
  EXPECT_FALSE(std::filesystem::exists(target.path() + "/weights"));
}

TEST(CheckpointArchiveTest, PathCheckAcceptsNestedRelativePathsOnly) {
  EXPECT_TRUE(CheckArchivePath("sae/cfg.json").ok());
  EXPECT_FALSE(CheckArchivePath("").ok());
  EXPECT_FALSE(CheckArchivePath("/etc/passwd").ok());
  EXPECT_FALSE(CheckArchivePath("a//b").ok());
  EXPECT_FALSE(CheckArchivePath("a/./b").ok());
  EXPECT_FALSE(CheckArchivePath("a/../../b").ok());
}

}  // namespace
}  // namespace sae::client
