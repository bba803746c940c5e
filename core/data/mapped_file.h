// A read-only memory map of a whole file.
#ifndef SAE_CORE_DATA_MAPPED_FILE_H_
#define SAE_CORE_DATA_MAPPED_FILE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sae::data {

// The bytes of one file, mapped read-only for the lifetime of this object. An empty file maps to
// an empty view. Thread-safe: the view is immutable. If another process truncates the file while
// it is mapped, reading the lost pages raises SIGBUS, as with any memory map.
class MappedFile {
 public:
  // NotFound / PermissionDenied / InvalidArgument (a folder) naming `path`.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::string_view bytes() const { return bytes_; }

 private:
  MappedFile(std::string path, std::string_view bytes) : path_(std::move(path)), bytes_(bytes) {}

  std::string path_;
  std::string_view bytes_;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_MAPPED_FILE_H_
