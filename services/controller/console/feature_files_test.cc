#include "services/controller/console/feature_files.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/common/checkpoint_archive.h"
#include "services/common/sha256.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;

// The archive of `dir` cut into chunks of `chunk_bytes`, with its manifest.
struct StoredArchive {
  v1::CheckpointManifest manifest;
  std::vector<std::string> chunks;

  FeatureFiles::ChunkReader Reader() {
    return [this](int32_t i) -> absl::StatusOr<std::string> {
      if (i < 0 || i >= static_cast<int32_t>(chunks.size())) {
        return absl::DataLossError("no such chunk");
      }
      return chunks[static_cast<size_t>(i)];
    };
  }
};

StoredArchive Store(const std::string& dir, size_t chunk_bytes) {
  auto reader = client::ArchiveReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  StoredArchive stored;
  std::string piece;
  int64_t total = 0;
  while ((*reader)->Read(chunk_bytes, &piece).ok() && !piece.empty()) {
    v1::ChunkDigest* digest = stored.manifest.add_chunks();
    digest->set_size(static_cast<int64_t>(piece.size()));
    digest->set_sha256(rpc::Sha256::Of(piece));
    total += static_cast<int64_t>(piece.size());
    stored.chunks.push_back(piece);
  }
  stored.manifest.set_chunk_count(static_cast<int32_t>(stored.chunks.size()));
  stored.manifest.set_total_bytes(total);
  return stored;
}

// The whole file `path`, read `piece` bytes at a time as the console serves it.
std::string ReadWhole(const FeatureFiles& files, const std::string& path, int64_t piece,
                      const FeatureFiles::ChunkReader& read) {
  std::string whole;
  while (static_cast<int64_t>(whole.size()) < files.Size(path)) {
    auto got = files.Read(path, static_cast<int64_t>(whole.size()), piece, read);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->empty()) break;
    whole += *got;
  }
  return whole;
}

class FeatureFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    folder_.Write("index.html", "<html>index</html>");
    folder_.Write("data/index.js", "SAE_DASH.index({\"rows\": []});");
    folder_.Write("data/chunk-00000.js", std::string(5000, 'x') + "end");
    folder_.Write("features.jsonl", "");
  }
  TempDir folder_;
};

TEST_F(FeatureFilesTest, FindsEveryFileAndReadsItAcrossChunkBoundaries) {
  for (size_t chunk_bytes : {7u, 64u, 1u << 20}) {
    StoredArchive stored = Store(folder_.path(), chunk_bytes);
    auto files = FeatureFiles::Index(stored.manifest, stored.Reader());
    ASSERT_TRUE(files.ok()) << files.status();
    EXPECT_EQ(files->Paths(), (std::vector<std::string>{"data/chunk-00000.js", "data/index.js",
                                                        "features.jsonl", "index.html"}));
    EXPECT_EQ(files->Size("data/chunk-00000.js"), 5003);
    EXPECT_EQ(files->Size("features.jsonl"), 0);
    EXPECT_EQ(files->Size("missing.js"), -1);
    EXPECT_EQ(ReadWhole(*files, "data/chunk-00000.js", 1000, stored.Reader()),
              std::string(5000, 'x') + "end");
    EXPECT_EQ(ReadWhole(*files, "index.html", 3, stored.Reader()), "<html>index</html>");
    EXPECT_EQ(ReadWhole(*files, "data/index.js", 1 << 20, stored.Reader()),
              "SAE_DASH.index({\"rows\": []});");
    EXPECT_TRUE(absl::IsNotFound(files->Read("missing.js", 0, 10, stored.Reader()).status()));
    EXPECT_TRUE(absl::IsOutOfRange(files->Read("index.html", 19, 10, stored.Reader()).status()));
  }
}

TEST_F(FeatureFilesTest, RefusesADamagedChunkOrATruncatedArchive) {
  StoredArchive stored = Store(folder_.path(), 64);
  StoredArchive damaged = stored;
  damaged.chunks[0][10] ^= 1;  // inside the first file's header
  EXPECT_TRUE(absl::IsDataLoss(FeatureFiles::Index(damaged.manifest, damaged.Reader()).status()));

  // A chunk inside a file's bytes is only read when that file is.
  StoredArchive inside = stored;
  auto files = FeatureFiles::Index(inside.manifest, inside.Reader());
  ASSERT_TRUE(files.ok());
  inside.chunks[10][0] ^= 1;  // within data/chunk-00000.js (bytes ~40 to 5043)
  EXPECT_TRUE(
      absl::IsDataLoss(files->Read("data/chunk-00000.js", 640, 10, inside.Reader()).status()));
  EXPECT_TRUE(files->Read("data/chunk-00000.js", 0, 10, inside.Reader()).ok());

  StoredArchive truncated = stored;
  truncated.chunks.pop_back();
  truncated.manifest.mutable_chunks()->RemoveLast();
  truncated.manifest.set_chunk_count(truncated.manifest.chunk_count() - 1);
  int64_t total = 0;
  for (const std::string& chunk : truncated.chunks) total += static_cast<int64_t>(chunk.size());
  truncated.manifest.set_total_bytes(total);
  EXPECT_TRUE(
      absl::IsDataLoss(FeatureFiles::Index(truncated.manifest, truncated.Reader()).status()));
}

}  // namespace
}  // namespace sae::controller
