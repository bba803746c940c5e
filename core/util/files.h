// Small file-system operations with absl::Status errors that name the path.
#ifndef SAE_CORE_UTIL_FILES_H_
#define SAE_CORE_UTIL_FILES_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae {

// Reads a whole file. NotFound when it does not exist; PermissionDenied / Internal otherwise.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` atomically: a temporary file in the same folder, fsync, rename.
// Readers see either the old file or the new one, never a partial file.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// Writes a file atomically in pieces: bytes go to a temporary file in the same folder, and
// Commit() fsyncs and renames it over `path`. Destroying the writer without Commit() removes
// the temporary file and leaves `path` untouched. Not thread-safe.
class AtomicFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path);
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  absl::Status Append(absl::string_view bytes);
  absl::Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string tmp, int fd)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
};

// Creates `path` and its parents when missing. OK when it already exists as a folder.
absl::Status MakeDirectories(const std::string& path);

// An absl::Status for a failed system call on `path`, with strerror(errno) in its message.
absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int error_number);

}  // namespace sae

#endif  // SAE_CORE_UTIL_FILES_H_
