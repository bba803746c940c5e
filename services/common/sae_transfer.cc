#include "services/common/sae_transfer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/sae/saelens_parameters.h"
#include "core/util/status.h"

namespace sae::service {
namespace {

// Every tensor any architecture sends (sparse::ParameterShapes).
const char* const kNames[] = {"W_enc",  "b_enc", "W_dec", "b_dec",         "threshold",
                              "r_mag",  "b_gate", "b_mag", "topk_threshold"};

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::Status SendSaePieces(const sparse::SaeParameters& params, const v1::EvaluateSaeRequest& first,
                           const std::function<bool(const v1::EvaluateSaeRequest&)>& send) {
  std::vector<std::pair<std::string, at::Tensor>> tensors = params.Named();
  if (params.topk_threshold.defined()) {
    tensors.emplace_back("topk_threshold", params.topk_threshold.reshape({1}));
  }
  bool header_sent = false;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor flat = tensor.detach().to(at::kFloat).contiguous().view({-1});
    const int64_t count = flat.numel();
    const float* values = flat.data_ptr<float>();
    for (int64_t offset = 0; offset < count || (count == 0 && offset == 0);
         offset += kSaePieceElements) {
      v1::EvaluateSaeRequest piece;
      if (!header_sent) {
        piece = first;
        header_sent = true;
      }
      piece.set_tensor(name);
      for (int64_t size : tensor.sizes()) piece.add_shape(size);
      piece.set_offset(offset);
      const int64_t n = std::min(kSaePieceElements, count - offset);
      piece.set_data(reinterpret_cast<const char*>(values + offset),
                     static_cast<size_t>(n) * sizeof(float));
      if (!send(piece)) return absl::UnavailableError("the evaluation stream broke while sending");
      if (count == 0) break;
    }
  }
  return absl::OkStatus();
}

absl::Status SaeAssembler::Add(const v1::EvaluateSaeRequest& piece) {
  if (piece.tensor().empty()) {
    if (piece.data().empty()) return absl::OkStatus();
    return absl::InvalidArgumentError("a piece of SAE parameters names no tensor");
  }
  bool known = false;
  for (const char* name : kNames) known = known || piece.tensor() == name;
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown SAE tensor '", piece.tensor(), "' (expected one of ",
        absl::StrJoin(kNames, ", "), ")"));
  }
  const std::vector<int64_t> shape(piece.shape().begin(), piece.shape().end());
  int64_t count = 1;
  for (int64_t size : shape) {
    if (size < 0 || size > (int64_t{1} << 31)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SAE tensor ", piece.tensor(), " has shape ", ShapeText(shape)));
    }
    count *= size;
    if (count > (int64_t{1} << 33)) {
      return absl::InvalidArgumentError(
          absl::StrCat("SAE tensor ", piece.tensor(), " is too large: ", ShapeText(shape)));
    }
  }
  auto [it, added] = tensors_.try_emplace(piece.tensor());
  Partial& partial = it->second;
  if (added) {
    partial.shape = shape;
    partial.values = at::empty({count}, at::kFloat);
  } else if (partial.shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("SAE tensor ", piece.tensor(),
                                                   " changed shape from ", ShapeText(partial.shape),
                                                   " to ", ShapeText(shape), " between pieces"));
  }
  if (piece.data().size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a piece of SAE tensor ", piece.tensor(),
                                                   " holds ", piece.data().size(),
                                                   " bytes, not whole float32 values"));
  }
  const int64_t n = static_cast<int64_t>(piece.data().size() / sizeof(float));
  if (piece.offset() != partial.received || piece.offset() + n > count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a piece of SAE tensor ", piece.tensor(), " covers elements [", piece.offset(), ", ",
        piece.offset() + n, ") but ", partial.received, " of ", count,
        " were received: pieces must come in order and stay inside the tensor"));
  }
  if (n > 0) {
    std::memcpy(partial.values.data_ptr<float>() + partial.received, piece.data().data(),
                piece.data().size());
  }
  partial.received += n;
  return absl::OkStatus();
}

absl::StatusOr<sparse::SaeParameters> SaeAssembler::Finish(const sparse::SaeOptions& options) {
  sparse::SaeParameters params;
  for (const auto& [name, expected] : sparse::ParameterShapes(options)) {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("the SAE's parameters lack ", name));
    }
    const Partial& partial = it->second;
    if (partial.shape != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SAE tensor ", name, " has shape ", ShapeText(partial.shape), " but this run's ",
          sparse::ArchitectureName(options.architecture), " SAE (d_in ", options.d_in,
          ", d_sae ", options.d_sae, ") has ", ShapeText(expected)));
    }
    if (partial.received != partial.values.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("SAE tensor ", name, ": ", partial.received,
                                                     " of ", partial.values.numel(),
                                                     " values received"));
    }
    at::Tensor t = partial.values.view(partial.shape);
    if (name == "W_enc") params.W_enc = t;
    if (name == "b_enc") params.b_enc = t;
    if (name == "W_dec") params.W_dec = t;
    if (name == "b_dec") params.b_dec = t;
    if (name == "threshold") params.threshold = t;
    if (name == "r_mag") params.r_mag = t;
    if (name == "b_gate") params.b_gate = t;
    if (name == "b_mag") params.b_mag = t;
    if (name == "topk_threshold") params.topk_threshold = t.to(at::kDouble).reshape({});
  }
  return params;
}

}  // namespace sae::service
