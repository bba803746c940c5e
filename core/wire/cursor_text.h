// Shard cursors as text: the hex of ShardCursor::ToBytes, as flags (--resume-cursor), cursor
// files, checkpoints and logs carry them.
#ifndef SAE_CORE_WIRE_CURSOR_TEXT_H_
#define SAE_CORE_WIRE_CURSOR_TEXT_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/data/shard_cursor.h"

namespace sae::wire {

// Lower-case hex of cursor.ToBytes() (about 40 characters).
std::string CursorToHex(const data::ShardCursor& cursor);

// The cursor whose CursorToHex is `hex` (surrounding white space ignored, either case).
// InvalidArgument when it is not hex or not a valid cursor.
absl::StatusOr<data::ShardCursor> CursorFromHex(std::string_view hex);

}  // namespace sae::wire

#endif  // SAE_CORE_WIRE_CURSOR_TEXT_H_
