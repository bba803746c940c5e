// Activations on the wire between activation servers and trainers: a [rows, d_in] matrix as
// the raw bytes of its elements in the run's wire dtype (run.yaml wire_dtype: float32,
// bfloat16 or float16), little-endian, row-major. No header: the message around the bytes
// carries the shape and the dtype.
#ifndef SAE_CORE_WIRE_ACTIVATION_CODEC_H_
#define SAE_CORE_WIRE_ACTIVATION_CODEC_H_

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/config/run_config.h"

namespace sae::wire {

// The LibTorch element type of a wire dtype (at::kFloat, at::kBFloat16, at::kHalf).
at::ScalarType ScalarTypeOf(config::DType dtype);

// Bytes per element: 4 for float32, 2 for the others.
size_t ElementSize(config::DType dtype);

// Replaces `*out` with the bytes of `rows` ([n, d_in], any floating type, any device)
// converted to `dtype` (round to nearest even, as at::Tensor::to does). One pass over the data.
// InvalidArgument when `rows` is not a 2-D floating tensor.
absl::Status EncodeActivations(const at::Tensor& rows, config::DType dtype, std::string* out);

// The [rows, d_in] float32 tensor whose wire bytes are `bytes` (copied; `bytes` may go away).
// InvalidArgument when the size of `bytes` is not rows * d_in * ElementSize(dtype).
absl::StatusOr<at::Tensor> DecodeActivations(std::string_view bytes, config::DType dtype,
                                             int64_t rows, int64_t d_in);

}  // namespace sae::wire

#endif  // SAE_CORE_WIRE_ACTIVATION_CODEC_H_
