#include "core/wire/activation_codec.h"

#include "absl/strings/str_cat.h"

namespace sae::wire {

// The bytes on the wire are the host's bytes: both ends of every deployment we build for are
// little-endian (x86-64, aarch64).
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the activation wire format is little-endian; add byte swapping for this host");

at::ScalarType ScalarTypeOf(config::DType dtype) {
  switch (dtype) {
    case config::DType::kFloat32:
      return at::kFloat;
    case config::DType::kBFloat16:
      return at::kBFloat16;
    case config::DType::kFloat16:
      return at::kHalf;
  }
  return at::kFloat;
}

size_t ElementSize(config::DType dtype) { return dtype == config::DType::kFloat32 ? 4 : 2; }

absl::Status EncodeActivations(const at::Tensor& rows, config::DType dtype, std::string* out) {
  if (!rows.defined() || rows.dim() != 2 || !at::isFloatingType(rows.scalar_type())) {
    return absl::InvalidArgumentError("activations on the wire must be a 2-D floating tensor");
  }
  const int64_t n = rows.size(0);
  const int64_t d_in = rows.size(1);
  out->resize(static_cast<size_t>(n * d_in) * ElementSize(dtype));
  if (n * d_in == 0) return absl::OkStatus();
  try {
    // Converting straight into the string's storage: one read and one write of the data.
    at::from_blob(out->data(), {n, d_in}, at::TensorOptions().dtype(ScalarTypeOf(dtype)))
        .copy_(rows);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("encoding activations: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> DecodeActivations(std::string_view bytes, config::DType dtype,
                                             int64_t rows, int64_t d_in) {
  if (rows < 0 || d_in <= 0 ||
      bytes.size() != static_cast<size_t>(rows * d_in) * ElementSize(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a batch of ", rows, " x ", d_in, " ", config::ToString(dtype), " activations needs ",
        rows * d_in * static_cast<int64_t>(ElementSize(dtype)), " bytes, got ", bytes.size()));
  }
  at::Tensor out = at::empty({rows, d_in}, at::kFloat);
  if (rows == 0) return out;
  try {
    // from_blob does not copy and copy_ only reads it, so the const_cast is safe.
    out.copy_(at::from_blob(const_cast<char*>(bytes.data()), {rows, d_in},
                            at::TensorOptions().dtype(ScalarTypeOf(dtype))));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("decoding activations: ", e.what_without_backtrace()));
  }
  return out;
}

}  // namespace sae::wire
