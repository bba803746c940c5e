// Reading and writing safetensors files (https://github.com/huggingface/safetensors).
//
// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end)} (plus an optional "__metadata__"
// object of string -> string), then the raw little-endian tensor bytes. Offsets are relative to
// the end of the header.
#ifndef SAE_CORE_IO_SAFETENSORS_H_
#define SAE_CORE_IO_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/io/dtype.h"

namespace sae::io {

// One tensor's entry in a safetensors header.
struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset of the data, relative to the start of the data section
  uint64_t end = 0;    // one past the last byte

  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A parsed and validated header.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // absolute file offset of the data section (8 + N)
};

// Parses and validates the header of a safetensors file of `file_size` bytes whose first bytes
// are `prefix` (at least the 8-byte length and the header itself). Checks: the length fits in
// the file, the JSON is an object, every entry has a known dtype, a shape of non-negative
// integers and data_offsets [begin, end) with end - begin == numel * dtype size; offsets lie
// inside the file, do not overlap and leave no holes (as the format requires);
// __metadata__ maps strings to strings. InvalidArgument names `source`, the tensor and what is
// wrong.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view prefix,
                                                         uint64_t file_size,
                                                         absl::string_view source);

// A memory-mapped, validated safetensors file. Immutable and thread-safe; the bytes returned
// by Data() stay valid for the life of the object.
class SafetensorsFile {
 public:
  // Opens and validates `path`. NotFound when missing; InvalidArgument (naming the file and
  // the tensor) when the header is malformed.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }

  // The entry named `name`, or nullptr.
  const TensorInfo* Find(absl::string_view name) const;
  // The raw little-endian bytes of `info` (which must come from this file).
  absl::Span<const uint8_t> Data(const TensorInfo& info) const;

 private:
  SafetensorsFile(std::string path, SafetensorsHeader header, const uint8_t* map, size_t size);

  std::string path_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
  const uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
};

// Builds a safetensors file. Not thread-safe.
class SafetensorsWriter {
 public:
  // Adds a tensor whose bytes are copied. InvalidArgument when the name is taken or empty, or
  // when data.size() != numel(shape) * DTypeSize(dtype).
  absl::Status Add(std::string name, DType dtype, std::vector<int64_t> shape,
                   absl::Span<const uint8_t> data);
  // Adds a tensor without copying: `data` must stay valid until Write returns.
  absl::Status AddView(std::string name, DType dtype, std::vector<int64_t> shape,
                       absl::Span<const uint8_t> data);
  void SetMetadata(std::string key, std::string value);

  // Writes the file atomically (temporary file, fsync, rename). Tensors are stored in the order
  // they were added; the header is padded with spaces to a multiple of 8 bytes so that data
  // offsets stay aligned, as the reference implementation does.
  absl::Status Write(const std::string& path) const;
  // The whole file as bytes.
  std::string Serialize() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    absl::Span<const uint8_t> data;
    std::string owned;  // backing bytes for Add()
  };
  absl::Status Check(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                     size_t bytes) const;
  std::string HeaderJson() const;

  std::vector<std::unique_ptr<Entry>> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace sae::io

#endif  // SAE_CORE_IO_SAFETENSORS_H_
