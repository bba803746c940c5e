// Element types of safetensors files and of tensors on the wire.
#ifndef SAE_CORE_IO_DTYPE_H_
#define SAE_CORE_IO_DTYPE_H_

#include <cstddef>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool };

// "F32", "BF16", ...: the names safetensors headers use.
absl::string_view DTypeName(DType dtype);
// Inverse of DTypeName. InvalidArgument lists the accepted names.
absl::StatusOr<DType> ParseDType(absl::string_view name);
// Bytes per element.
size_t DTypeSize(DType dtype);

}  // namespace sae::io

#endif  // SAE_CORE_IO_DTYPE_H_
