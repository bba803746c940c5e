// Small file-system operations with absl::Status errors that name the path.
#ifndef SAE_CORE_UTIL_FILES_H_
#define SAE_CORE_UTIL_FILES_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sae {

// Reads a whole file. NotFound when it does not exist; PermissionDenied / Internal otherwise.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` atomically: a temporary file in the same folder, fsync, rename.
// Readers see either the old file or the new one, never a partial file.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

// Creates `path` and its parents when missing. OK when it already exists as a folder.
absl::Status MakeDirectories(const std::string& path);

// An absl::Status for a failed system call on `path`, with strerror(errno) in its message.
absl::Status ErrnoStatus(std::string_view what, const std::string& path, int error_number);

}  // namespace sae

#endif  // SAE_CORE_UTIL_FILES_H_
