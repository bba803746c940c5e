#include "services/common/sae_transfer.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status.h"

namespace sae::service {
namespace {

const char* const kNames[] = {"W_enc", "b_enc", "W_dec", "b_dec"};

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::Status SendSaePieces(const sparse::SaeParameters& params, const v1::EvaluateSaeRequest& first,
                           const std::function<bool(const v1::EvaluateSaeRequest&)>& send) {
  const at::Tensor tensors[] = {params.W_enc, params.b_enc, params.W_dec, params.b_dec};
  bool header_sent = false;
  for (int i = 0; i < 4; ++i) {
    at::Tensor flat = tensors[i].detach().to(at::kFloat).contiguous().view({-1});
    const int64_t count = flat.numel();
    const float* values = flat.data_ptr<float>();
    for (int64_t offset = 0; offset < count || (count == 0 && offset == 0);
         offset += kSaePieceElements) {
      v1::EvaluateSaeRequest piece;
      if (!header_sent) {
        piece = first;
        header_sent = true;
      }
      piece.set_tensor(kNames[i]);
      for (int64_t size : tensors[i].sizes()) piece.add_shape(size);
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
        "unknown SAE tensor '", piece.tensor(), "' (expected W_enc, b_enc, W_dec, b_dec)"));
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
  const std::vector<int64_t> expected[] = {
      {options.d_in, options.d_sae}, {options.d_sae}, {options.d_sae, options.d_in}, {options.d_in}};
  at::Tensor out[4];
  for (int i = 0; i < 4; ++i) {
    auto it = tensors_.find(kNames[i]);
    if (it == tensors_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the SAE's parameters lack ", kNames[i]));
    }
    const Partial& partial = it->second;
    if (partial.shape != expected[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SAE tensor ", kNames[i], " has shape ", ShapeText(partial.shape), " but this run's SAE (d_in ",
          options.d_in, ", d_sae ", options.d_sae, ") has ", ShapeText(expected[i])));
    }
    if (partial.received != partial.values.numel()) {
      return absl::InvalidArgumentError(absl::StrCat("SAE tensor ", kNames[i], ": ",
                                                     partial.received, " of ",
                                                     partial.values.numel(), " values received"));
    }
    out[i] = partial.values.view(partial.shape);
  }
  sparse::SaeParameters params;
  params.W_enc = out[0];
  params.b_enc = out[1];
  params.W_dec = out[2];
  params.b_dec = out[3];
  return params;
}

}  // namespace sae::service
