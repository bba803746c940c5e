// An SAE's parameters over gRPC, in pieces under the default 4 MiB message limit: what trainer
// rank 0 sends an activation server to evaluate (ActivationService.EvaluateSae), and how the
// server puts the tensors back together and checks them against the run's SAE.
#ifndef SAE_SERVICES_COMMON_SAE_TRANSFER_H_
#define SAE_SERVICES_COMMON_SAE_TRANSFER_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"
#include "sae/v1/activations.pb.h"

namespace sae::service {

// Float32 elements per piece (1 MiB).
inline constexpr int64_t kSaePieceElements = 256 * 1024;

// Calls `send` with every piece of `params` (W_enc, b_enc, W_dec, b_dec in float32, in order),
// the first carrying `first`'s run id, config digest and step. Stops at the first false `send`
// (the stream broke) and returns Unavailable then.
absl::Status SendSaePieces(const sparse::SaeParameters& params, const v1::EvaluateSaeRequest& first,
                           const std::function<bool(const v1::EvaluateSaeRequest&)>& send);

// Reassembles the pieces of one call.
class SaeAssembler {
 public:
  // InvalidArgument for an unknown tensor name, a shape that changes between pieces, a piece
  // outside its tensor or out of order, or data that is not whole float32 values.
  absl::Status Add(const v1::EvaluateSaeRequest& piece);
  // The parameters, checked against `options` (d_in, d_sae): InvalidArgument names a missing
  // or incomplete tensor, or the shape received beside the one expected.
  absl::StatusOr<sparse::SaeParameters> Finish(const sparse::SaeOptions& options);

 private:
  struct Partial {
    std::vector<int64_t> shape;
    at::Tensor values;     // float32, flat
    int64_t received = 0;  // elements, from the start
  };
  std::map<std::string, Partial> tensors_;
};

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_SAE_TRANSFER_H_
