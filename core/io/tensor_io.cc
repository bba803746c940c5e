#include "core/io/tensor_io.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace sae::io {

absl::StatusOr<at::ScalarType> ScalarTypeFor(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return at::kDouble;
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
    case DType::kI32:
      return at::kInt;
    case DType::kI16:
      return at::kShort;
    case DType::kI8:
      return at::kChar;
    case DType::kU8:
      return at::kByte;
    case DType::kBool:
      return at::kBool;
    case DType::kU16:
      return at::kInt;
    case DType::kU32:
      return at::kLong;
    case DType::kU64:
      break;
  }
  return absl::UnimplementedError("U64 tensors have no LibTorch type");
}

absl::StatusOr<DType> DTypeFor(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return DType::kF64;
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    case at::kInt:
      return DType::kI32;
    case at::kShort:
      return DType::kI16;
    case at::kChar:
      return DType::kI8;
    case at::kByte:
      return DType::kU8;
    case at::kBool:
      return DType::kBool;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("tensors of type ", c10::toString(type), " cannot be stored in safetensors"));
}

absl::StatusOr<at::Tensor> ReadTensor(const SafetensorsFile& file, const TensorInfo& info) {
  SAE_ASSIGN_OR_RETURN(at::ScalarType type, ScalarTypeFor(info.dtype));
  absl::Span<const uint8_t> bytes = file.Data(info);
  at::Tensor out;
  if (info.dtype == DType::kU16 || info.dtype == DType::kU32) {
    out = at::empty(info.shape, at::TensorOptions().dtype(type));
    int64_t n = info.numel();
    if (info.dtype == DType::kU16) {
      int32_t* dst = out.data_ptr<int32_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, bytes.data() + 2 * i, 2);
        dst[i] = v;
      }
    } else {
      int64_t* dst = out.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t v;
        std::memcpy(&v, bytes.data() + 4 * i, 4);
        dst[i] = v;
      }
    }
    return out;
  }
  out = at::empty(info.shape, at::TensorOptions().dtype(type));
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

absl::StatusOr<std::map<std::string, at::Tensor>> LoadTensors(const std::string& path) {
  SAE_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& info : file->tensors()) {
    auto tensor = ReadTensor(*file, info);
    if (!tensor.ok()) {
      return absl::Status(tensor.status().code(), absl::StrCat(path, ": tensor '", info.name,
                                                               "': ", tensor.status().message()));
    }
    out.emplace(info.name, std::move(tensor).value());
  }
  return out;
}

absl::Status SaveTensors(const std::string& path, const NamedTensors& tensors,
                         const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter writer;
  std::vector<at::Tensor> keep_alive;
  keep_alive.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
    }
    SAE_ASSIGN_OR_RETURN(DType dtype, DTypeFor(tensor.scalar_type()));
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    keep_alive.push_back(cpu);
    std::vector<int64_t> shape(cpu.sizes().begin(), cpu.sizes().end());
    auto data = absl::Span<const uint8_t>(static_cast<const uint8_t*>(cpu.data_ptr()),
                                          cpu.numel() * cpu.element_size());
    SAE_RETURN_IF_ERROR(writer.AddView(name, dtype, std::move(shape), data));
  }
  for (const auto& [k, v] : metadata) writer.SetMetadata(k, v);
  return writer.Write(path);
}

}  // namespace sae::io
