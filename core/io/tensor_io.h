// LibTorch tensors to and from safetensors files.
#ifndef SAE_CORE_IO_TENSOR_IO_H_
#define SAE_CORE_IO_TENSOR_IO_H_

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/io/safetensors.h"

namespace sae::io {

// The LibTorch type that holds `dtype`. U16 and U32 widen to Int and Long (LibTorch 1.13 has
// no unsigned types beyond uint8); U64 is Unimplemented.
absl::StatusOr<at::ScalarType> ScalarTypeFor(DType dtype);
// The safetensors type of a LibTorch type; InvalidArgument for complex and quantised types.
absl::StatusOr<DType> DTypeFor(at::ScalarType type);

// A CPU tensor holding a copy of `info`'s data (safe for unaligned offsets).
absl::StatusOr<at::Tensor> ReadTensor(const SafetensorsFile& file, const TensorInfo& info);

// Every tensor of the file at `path`, by name.
absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(const std::string& path);

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Writes `tensors` (any device, made contiguous on CPU) in order, atomically.
absl::Status SaveTensors(const std::string& path, const NamedTensors& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace sae::io

#endif  // SAE_CORE_IO_TENSOR_IO_H_
