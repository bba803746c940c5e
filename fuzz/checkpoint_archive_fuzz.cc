// The checkpoint archive extractor (services/common/checkpoint_archive.h) on arbitrary bytes, as
// the trainer receives a download. Properties: extraction never crashes and never writes outside
// its folder; feeding the bytes in one piece or in small pieces gives the same outcome and the
// same files; and an archive that extracts cleanly, with its paths in the order ArchiveReader
// writes them, is archived back by ArchiveReader to exactly the input bytes.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/scratch_dir.h"
#include "services/common/checkpoint_archive.h"

namespace {

using sae::client::ArchiveExtractor;
using sae::fuzz::PropertyFailed;

struct Extracted {
  bool ok = false;
  std::vector<std::string> files;
};

// Extracts `bytes` into `dir` (emptied first), `piece` bytes at a time.
Extracted Extract(const std::string& dir, absl::string_view bytes, size_t piece) {
  std::filesystem::create_directories(dir);
  sae::fuzz::EmptyFolder(dir);
  auto extractor = ArchiveExtractor::Create(dir);
  if (!extractor.ok()) PropertyFailed(extractor.status().ToString());
  Extracted result;
  result.ok = true;
  for (size_t at = 0; at < bytes.size() && result.ok; at += piece) {
    result.ok = (*extractor)->Append(bytes.substr(at, piece)).ok();
  }
  result.ok = result.ok && (*extractor)->Finish().ok();
  result.files = (*extractor)->files();
  return result;
}

// Every file under `dir`, which must be a regular file or folder inside it.
void CheckInside(const std::string& dir) {
  const std::string root = std::filesystem::canonical(dir).string() + "/";
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.is_symlink()) PropertyFailed("the extractor made a link: " + entry.path().string());
    std::string path = std::filesystem::canonical(entry.path()).string();
    if (path.compare(0, root.size(), root) != 0)
      PropertyFailed("wrote outside its folder: " + path);
  }
  // Nothing may appear next to the folder either (a path such as "../x" that slipped through).
  for (const auto& entry :
       std::filesystem::directory_iterator(std::filesystem::path(dir).parent_path())) {
    if (entry.path() != std::filesystem::path(dir)) {
      PropertyFailed("wrote next to its folder: " + entry.path().string());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes = sae::fuzz::AsAbslBytes(data, size);
  const std::string parent = sae::fuzz::ScratchDir() + "/archive";
  const std::string dir = parent + "/out";
  sae::fuzz::EmptyFolder(sae::fuzz::ScratchDir());

  const Extracted whole = Extract(dir, bytes, std::max<size_t>(bytes.size(), 1));
  CheckInside(dir);
  const Extracted pieces = Extract(dir, bytes, 1 + size % 13);
  CheckInside(dir);
  if (whole.ok != pieces.ok || whole.files != pieces.files) {
    PropertyFailed(absl::StrCat("one piece ", whole.ok ? "extracts " : "fails after ",
                                whole.files.size(), " files, small pieces ",
                                pieces.ok ? "extract " : "fail after ", pieces.files.size()));
  }
  if (!whole.ok || !std::is_sorted(whole.files.begin(), whole.files.end()) ||
      std::adjacent_find(whole.files.begin(), whole.files.end()) != whole.files.end()) {
    return 0;
  }
  auto reader = sae::client::ArchiveReader::Open(dir);
  if (!reader.ok())
    PropertyFailed("ArchiveReader refuses an extracted folder: " + reader.status().ToString());
  std::string archived, piece;
  do {
    absl::Status read = (*reader)->Read(1 << 16, &piece);
    if (!read.ok()) PropertyFailed("ArchiveReader::Read: " + read.ToString());
    archived += piece;
  } while (!piece.empty());
  if (archived != bytes) {
    PropertyFailed(absl::StrCat("archiving the extracted files gives ", archived.size(),
                                " bytes, not the ", bytes.size(), " extracted"));
  }
  return 0;
}
