// A checkpoint directory as one stream of bytes, and back: how checkpoints travel through the
// controller, which stores the stream in chunks without looking inside.
//
// Format "SAECKPT1": the 8 bytes "SAECKPT1", then for each regular file under the directory, in
// byte order of its relative path:
//   u32 little-endian  length of the relative path
//   the path           '/'-separated, relative, no empty, "." or ".." components
//   u64 little-endian  size of the file in bytes
//   the file's bytes
// and nothing after the last file. Folders are implied by the paths; empty folders, links and
// special files are not recorded.
//
// A trainer's checkpoint directory is core/training/checkpoint.h's layout: its SaveState files
// (state.safetensors, state.json), run.yaml, and the SAELens export (cfg.json,
// sae_weights.safetensors, sparsity.safetensors) in `sae/`; `saectl export` writes out the folder
// that holds cfg.json.
#ifndef SAE_SERVICES_COMMON_CHECKPOINT_ARCHIVE_H_
#define SAE_SERVICES_COMMON_CHECKPOINT_ARCHIVE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/util/files.h"

namespace sae::client {

inline constexpr absl::string_view kArchiveMagic = "SAECKPT1";

// Reads a directory as an archive, a piece at a time, holding one file open at a time. The
// directory must not change while it is read. Not thread-safe.
class ArchiveReader {
 public:
  // Lists the regular files under `dir`. NotFound when `dir` is missing, InvalidArgument when it
  // is not a folder or holds a path the format cannot carry.
  static absl::StatusOr<std::unique_ptr<ArchiveReader>> Open(const std::string& dir);

  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;
  ~ArchiveReader();

  // Size of the whole archive in bytes.
  int64_t total_bytes() const { return total_bytes_; }
  // Relative paths of the files, in archive order.
  const std::vector<std::string>& files() const { return paths_; }

  // Replaces `out` with the next at most `max_bytes` bytes of the archive; `out` is empty at the
  // end. Internal (naming the file) when a file cannot be read or changed size since Open.
  absl::Status Read(size_t max_bytes, std::string* out);

 private:
  ArchiveReader(std::string dir, std::vector<std::string> paths, std::vector<int64_t> sizes);
  absl::Status OpenFile(size_t index);

  const std::string dir_;
  const std::vector<std::string> paths_;
  const std::vector<int64_t> sizes_;
  int64_t total_bytes_ = 0;

  std::string pending_;         // framing bytes not yet returned
  size_t next_file_ = 0;        // index of the next file whose header goes to pending_
  FILE* file_ = nullptr;        // the file whose bytes are being returned
  int64_t file_remaining_ = 0;  // bytes of file_ not yet returned
};

// Writes the files of an archive fed to it in pieces of any size into a directory. Each file is
// written atomically (core/util AtomicFileWriter), so a reader of the directory never sees a
// half-written file. Not thread-safe.
class ArchiveExtractor {
 public:
  // Files go under `dir`, created when missing. Files already there with the same paths are
  // replaced; others are left alone.
  static absl::StatusOr<std::unique_ptr<ArchiveExtractor>> Create(const std::string& dir);

  ArchiveExtractor(const ArchiveExtractor&) = delete;
  ArchiveExtractor& operator=(const ArchiveExtractor&) = delete;
  ~ArchiveExtractor();

  // Consumes the next bytes of the archive. InvalidArgument when they break the format (bad
  // magic, a path that is absolute or climbs out of `dir`); the extractor is unusable after an
  // error.
  absl::Status Append(absl::string_view bytes);

  // Checks that the archive ended at a file boundary. InvalidArgument when it was cut short.
  absl::Status Finish();

  // Relative paths of the files written so far.
  const std::vector<std::string>& files() const { return written_; }

 private:
  explicit ArchiveExtractor(std::string dir) : dir_(std::move(dir)) {}
  absl::Status StartFile(const std::string& path, uint64_t size);

  enum class Stage { kMagic, kPathLength, kPath, kSize, kData };

  const std::string dir_;
  Stage stage_ = Stage::kMagic;
  std::string header_;  // bytes of the current magic / length / path / size field so far
  uint32_t path_length_ = 0;
  std::string path_;
  uint64_t data_remaining_ = 0;
  std::unique_ptr<AtomicFileWriter> file_;
  std::vector<std::string> written_;
  absl::Status error_;
};

// Checks a relative path of the archive: non-empty, '/'-separated, not absolute, no empty, "."
// or ".." component, no NUL. InvalidArgument naming the path otherwise.
absl::Status CheckArchivePath(absl::string_view path);

}  // namespace sae::client

#endif  // SAE_SERVICES_COMMON_CHECKPOINT_ARCHIVE_H_
