#include "core/data/shard_cursor.h"

#include <tuple>

#include "absl/strings/str_cat.h"

namespace sae::data {
namespace {

constexpr char kVersion = 1;

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

bool ReadVarint(std::string_view* in, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

auto Position(const ShardCursor& cursor) {
  return std::make_tuple(cursor.epoch, cursor.file_index, cursor.offset,
                         cursor.tokens_into_document, cursor.contexts_served);
}

}  // namespace

std::string ShardCursor::ToBytes() const {
  std::string out(1, kVersion);
  AppendVarint(shard_index, &out);
  AppendVarint(shard_count, &out);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(dataset_fingerprint >> (8 * i)));
  AppendVarint(epoch, &out);
  AppendVarint(file_index, &out);
  AppendVarint(offset, &out);
  AppendVarint(tokens_into_document, &out);
  AppendVarint(contexts_served, &out);
  return out;
}

absl::StatusOr<ShardCursor> ShardCursor::FromBytes(std::string_view bytes) {
  auto invalid = [&bytes](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a shard cursor (", bytes.size(), " bytes): ", why));
  };
  if (bytes.empty()) return invalid("empty");
  if (bytes.front() != kVersion) {
    return invalid(absl::StrCat("version ", static_cast<int>(bytes.front()), ", expected ",
                                static_cast<int>(kVersion)));
  }
  std::string_view in = bytes.substr(1);
  ShardCursor cursor;
  uint64_t shard_index, shard_count;
  if (!ReadVarint(&in, &shard_index) || !ReadVarint(&in, &shard_count)) return invalid("truncated");
  if (shard_count == 0 || shard_count > UINT32_MAX || shard_index >= shard_count) {
    return invalid(absl::StrCat("shard ", shard_index, " of ", shard_count));
  }
  cursor.shard_index = static_cast<uint32_t>(shard_index);
  cursor.shard_count = static_cast<uint32_t>(shard_count);
  if (in.size() < 8) return invalid("truncated");
  for (int i = 0; i < 8; ++i) {
    cursor.dataset_fingerprint |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  }
  in.remove_prefix(8);
  if (!ReadVarint(&in, &cursor.epoch) || !ReadVarint(&in, &cursor.file_index) ||
      !ReadVarint(&in, &cursor.offset) || !ReadVarint(&in, &cursor.tokens_into_document) ||
      !ReadVarint(&in, &cursor.contexts_served)) {
    return invalid("truncated");
  }
  if (!in.empty()) return invalid(absl::StrCat(in.size(), " trailing bytes"));
  return cursor;
}

bool ShardCursor::IsAfter(const ShardCursor& other) const {
  if (shard_index != other.shard_index || shard_count != other.shard_count ||
      dataset_fingerprint != other.dataset_fingerprint) {
    return false;
  }
  return Position(other) < Position(*this);
}

std::string ShardCursor::DebugString() const {
  return absl::StrCat("shard ", shard_index, "/", shard_count, " epoch ", epoch, " file ",
                      file_index, " offset ", offset, " +", tokens_into_document, " (served ",
                      contexts_served, ")");
}

bool operator==(const ShardCursor& a, const ShardCursor& b) {
  return a.shard_index == b.shard_index && a.shard_count == b.shard_count &&
         a.dataset_fingerprint == b.dataset_fingerprint && Position(a) == Position(b);
}

}  // namespace sae::data
