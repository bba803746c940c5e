#include "services/controller/console/saelens_tar.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "services/common/checkpoint_archive.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;

// The archive of `dir` (services/common/checkpoint_archive.h).
std::string ArchiveOf(const std::string& dir) {
  auto reader = client::ArchiveReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  std::string archive, piece;
  do {
    EXPECT_TRUE((*reader)->Read(1000, &piece).ok());
    archive += piece;
  } while (!piece.empty());
  return archive;
}

// Feeds `archive` to a SaeLensTar in pieces of `piece` bytes; returns the tar.
absl::StatusOr<std::string> ToTar(const std::string& archive, size_t piece,
                                  const std::string& folder) {
  SaeLensTar tar(folder);
  std::string out;
  for (size_t at = 0; at < archive.size(); at += piece) {
    absl::Status fed = tar.Feed(absl::string_view(archive).substr(at, piece), &out);
    if (!fed.ok()) return fed;
  }
  absl::Status finished = tar.Finish(&out);
  if (!finished.ok()) return finished;
  return out;
}

// A trainer checkpoint's layout (core/training/checkpoint.h) with odd file sizes.
void WriteCheckpoint(const TempDir& folder) {
  folder.Write("ckpt/run.yaml", "d_in: 64\n");
  folder.Write("ckpt/state.json", "{\"step\": 60}");
  folder.Write("ckpt/state.safetensors", std::string(1500, 's'));
  folder.Write("ckpt/sae/cfg.json", "{\"d_in\": 64, \"d_sae\": 256}");
  folder.Write("ckpt/sae/sae_weights.safetensors", std::string(70001, 'w'));
  folder.Write("ckpt/sae/sparsity.safetensors", std::string(512, 'p'));
}

TEST(SaeLensTarTest, HoldsExactlyTheSaeLensFolderAndTarExtractsIt) {
  TempDir folder;
  WriteCheckpoint(folder);
  const std::string archive = ArchiveOf(folder.path() + "/ckpt");
  for (size_t piece : {size_t{1}, size_t{7}, size_t{4096}, archive.size()}) {
    absl::StatusOr<std::string> tar = ToTar(archive, piece, "tiny-step-60");
    ASSERT_TRUE(tar.ok()) << tar.status();
    EXPECT_EQ(tar->size() % 512, 0u);
    const std::string out = folder.path() + "/out" + std::to_string(piece);
    ASSERT_TRUE(WriteFileAtomically(out + ".tar", *tar).ok());
    const std::string command =
        absl::StrCat("mkdir -p ", out, " && tar -xf ", out, ".tar -C ", out, " && test \"$(ls ",
                     out, "/tiny-step-60 | wc -l)\" = 3");
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    for (const char* name : {"cfg.json", "sae_weights.safetensors", "sparsity.safetensors"}) {
      EXPECT_EQ(ReadFile(absl::StrCat(out, "/tiny-step-60/", name)).value_or("?"),
                ReadFile(absl::StrCat(folder.path(), "/ckpt/sae/", name)).value_or("!"))
          << name << " in pieces of " << piece;
    }
  }
}

TEST(SaeLensTarTest, TakesTheFinalSaeWhoseFolderIsTheArchiveItself) {
  TempDir folder;
  folder.Write("final/cfg.json", "{}");
  folder.Write("final/sae_weights.safetensors", "weights");
  const std::string archive = ArchiveOf(folder.path() + "/final");
  SaeLensTar tar("run-step-9");
  std::string out;
  ASSERT_TRUE(tar.Feed(archive, &out).ok());
  ASSERT_TRUE(tar.Finish(&out).ok());
  EXPECT_EQ(tar.files(), 2);
  EXPECT_NE(out.find("run-step-9/sae_weights.safetensors"), std::string::npos);
}

TEST(SaeLensTarTest, RefusesACutArchiveAndOneWithoutCfgJson) {
  TempDir folder;
  WriteCheckpoint(folder);
  const std::string archive = ArchiveOf(folder.path() + "/ckpt");
  EXPECT_EQ(ToTar(archive.substr(0, archive.size() - 10), 100, "x").status().code(),
            absl::StatusCode::kDataLoss);
  folder.Write("plain/state.json", "{}");
  EXPECT_EQ(ToTar(ArchiveOf(folder.path() + "/plain"), 100, "x").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(ToTar("NOTANARCHIVE", 100, "x").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sae::controller
