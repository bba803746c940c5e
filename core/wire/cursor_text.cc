#include "core/wire/cursor_text.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace sae::wire {

std::string CursorToHex(const data::ShardCursor& cursor) {
  return absl::BytesToHexString(cursor.ToBytes());
}

absl::StatusOr<data::ShardCursor> CursorFromHex(std::string_view hex) {
  absl::string_view text = absl::StripAsciiWhitespace(absl::string_view(hex.data(), hex.size()));
  if (text.empty() || text.size() % 2 != 0 ||
      text.find_first_not_of("0123456789abcdefABCDEF") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a shard cursor (an even number of hex digits)"));
  }
  const std::string bytes = absl::HexStringToBytes(text);
  auto cursor = data::ShardCursor::FromBytes(bytes);
  if (!cursor.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a shard cursor: ", cursor.status().message()));
  }
  return cursor;
}

}  // namespace sae::wire
