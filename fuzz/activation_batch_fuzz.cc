// An ActivationBatch message of arbitrary bytes, taken apart as a trainer takes a batch apart
// (services/trainer/activation_stream.cc Accept): the proto, its wire dtype (FromWire), its data
// (core/wire DecodeActivations with the shape the message claims, at most 2^16 elements) and its
// frontier cursor (ShardCursor::FromBytes, and CursorFromHex of the same bytes). Properties:
// nothing crashes; DecodeActivations accepts exactly the data of rows * d_in elements; decoded
// activations encode back to values that decode the same (NaN stays NaN); and an accepted cursor
// survives ToBytes and CursorToHex unchanged.
#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "core/data/shard_cursor.h"
#include "core/wire/activation_codec.h"
#include "core/wire/cursor_text.h"
#include "fuzz/scratch_dir.h"
#include "sae/v1/activations.pb.h"
#include "services/common/stream_protocol.h"

namespace {

using sae::fuzz::PropertyFailed;

void CheckActivations(const sae::v1::ActivationBatch& batch) {
  auto dtype = sae::stream::FromWire(batch.dtype());
  if (!dtype.ok() || batch.shape_size() != 2) return;
  const int64_t rows = batch.shape(0), d_in = batch.shape(1);
  if (rows < 0 || d_in <= 0 || rows > (1 << 16) || d_in > (1 << 16) || rows * d_in > (1 << 16)) {
    return;  // the trainer compares the shape with its own first; no larger batch gets here
  }
  // (d_in 0 is refused whatever the data: no run has it.)
  const size_t expected = static_cast<size_t>(rows * d_in) * sae::wire::ElementSize(*dtype);
  auto decoded = sae::wire::DecodeActivations(batch.data(), *dtype, rows, d_in);
  if (decoded.ok() != (batch.data().size() == expected)) {
    PropertyFailed(absl::StrCat("DecodeActivations ", decoded.ok() ? "accepts " : "refuses ",
                                batch.data().size(), " bytes for ", expected));
  }
  if (!decoded.ok()) return;
  if (decoded->sizes() != at::IntArrayRef({rows, d_in}) || decoded->scalar_type() != at::kFloat) {
    PropertyFailed("decoded activations of the wrong shape or type");
  }
  std::string encoded;
  absl::Status status = sae::wire::EncodeActivations(*decoded, *dtype, &encoded);
  if (!status.ok()) PropertyFailed("EncodeActivations: " + status.ToString());
  auto again = sae::wire::DecodeActivations(encoded, *dtype, rows, d_in);
  if (!again.ok()) PropertyFailed("re-encoded activations are refused");
  at::Tensor same =
      at::eq(*decoded, *again).logical_or(decoded->isnan().logical_and(again->isnan()));
  if (!same.all().item<bool>()) PropertyFailed("activations change through encode and decode");
}

void CheckCursor(const std::string& bytes) {
  auto cursor = sae::data::ShardCursor::FromBytes(bytes);
  (void)sae::wire::CursorFromHex(bytes);
  if (!cursor.ok()) return;
  (void)cursor->DebugString();
  auto again = sae::data::ShardCursor::FromBytes(cursor->ToBytes());
  if (!again.ok() || *again != *cursor) PropertyFailed("a cursor changes through ToBytes");
  auto from_hex = sae::wire::CursorFromHex(sae::wire::CursorToHex(*cursor));
  if (!from_hex.ok() || *from_hex != *cursor) PropertyFailed("a cursor changes through hex");
  (void)cursor->IsAfter(*again);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sae::v1::ActivationBatch batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;
  CheckActivations(batch);
  CheckCursor(batch.frontier_cursor());
  return 0;
}
