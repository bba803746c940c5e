#include "core/tokenizer/bpe_vocabulary.h"

#include <cstdio>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/tokenizer/byte_level.h"

namespace sae::tokenizer {
namespace {

constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// Reads the flat JSON object of a vocabulary file, tracking where it is for error messages.
class VocabularyJsonReader {
 public:
  VocabularyJsonReader(absl::string_view json, absl::string_view path) : json_(json), path_(path) {}

  // Calls `on_entry(symbol, id, symbol_offset, id_offset)` for each member, in order.
  template <typename OnEntry>
  absl::Status Read(OnEntry on_entry) {
    SkipWhitespace();
    if (!Consume('{')) return ErrorHere("expected '{' (a JSON object from symbol to id)");
    SkipWhitespace();
    if (Consume('}')) return AtEnd();
    while (true) {
      SkipWhitespace();
      size_t symbol_offset = pos_;
      std::string symbol;
      if (absl::Status status = ReadString(&symbol); !status.ok()) return status;
      SkipWhitespace();
      if (!Consume(':')) return ErrorHere("expected ':' after a symbol");
      SkipWhitespace();
      size_t id_offset = pos_;
      int64_t id = 0;
      if (absl::Status status = ReadId(&id); !status.ok()) return status;
      if (absl::Status status = on_entry(std::move(symbol), id, symbol_offset, id_offset);
          !status.ok()) {
        return status;
      }
      SkipWhitespace();
      if (Consume(',')) continue;
      if (Consume('}')) return AtEnd();
      return ErrorHere("expected ',' or '}' after an id");
    }
  }

  // InvalidArgument "PATH:LINE:COLUMN: message" for byte offset `offset`.
  absl::Status ErrorAt(size_t offset, absl::string_view message) const {
    size_t line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < offset && i < json_.size(); ++i) {
      if (json_[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ":", line, ":", offset - line_start + 1, ": ", message));
  }

 private:
  absl::Status ErrorHere(absl::string_view message) const { return ErrorAt(pos_, message); }

  absl::Status AtEnd() {
    SkipWhitespace();
    if (pos_ != json_.size()) return ErrorHere("unexpected text after the closing '}'");
    return absl::OkStatus();
  }

  void SkipWhitespace() {
    while (pos_ < json_.size() && (json_[pos_] == ' ' || json_[pos_] == '\t' ||
                                   json_[pos_] == '\n' || json_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(char c) {
    if (pos_ < json_.size() && json_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  // Four hex digits of a \u escape.
  std::optional<char32_t> ReadHex4() {
    if (pos_ + 4 > json_.size()) return std::nullopt;
    char32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = json_[pos_ + i];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      value = value * 16 + static_cast<char32_t>(digit);
    }
    pos_ += 4;
    return value;
  }

  static void AppendUtf8(char32_t c, std::string* out) {
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (c >> 12)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (c >> 18)));
      out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }

  // A JSON string, decoded to UTF-8.
  absl::Status ReadString(std::string* out) {
    if (!Consume('"')) return ErrorHere("expected '\"' to start a symbol");
    while (true) {
      if (pos_ >= json_.size()) return ErrorHere("unterminated string");
      char c = json_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (static_cast<unsigned char>(c) < 0x20) {
        return ErrorHere("control character inside a string");
      }
      if (c != '\\') {
        out->push_back(c);
        ++pos_;
        continue;
      }
      size_t escape_offset = pos_;
      ++pos_;
      if (pos_ >= json_.size()) return ErrorHere("unterminated string");
      char kind = json_[pos_++];
      switch (kind) {
        case '"':
        case '\\':
        case '/':
          out->push_back(kind);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          std::optional<char32_t> unit = ReadHex4();
          if (!unit) return ErrorAt(escape_offset, "malformed \\u escape");
          char32_t c32 = *unit;
          if (c32 >= 0xD800 && c32 <= 0xDBFF) {
            std::optional<char32_t> low;
            if (Consume('\\') && Consume('u')) low = ReadHex4();
            if (!low || *low < 0xDC00 || *low > 0xDFFF) {
              return ErrorAt(escape_offset, "unpaired surrogate in a \\u escape");
            }
            c32 = 0x10000 + ((c32 - 0xD800) << 10) + (*low - 0xDC00);
          } else if (c32 >= 0xDC00 && c32 <= 0xDFFF) {
            return ErrorAt(escape_offset, "unpaired surrogate in a \\u escape");
          }
          AppendUtf8(c32, out);
          break;
        }
        default:
          return ErrorAt(escape_offset, "unknown escape in a string");
      }
    }
  }

  // A token id: a non-negative integer without fraction or exponent.
  absl::Status ReadId(int64_t* id) {
    size_t start = pos_;
    int64_t value = 0;
    while (pos_ < json_.size() && json_[pos_] >= '0' && json_[pos_] <= '9') {
      value = value * 10 + (json_[pos_] - '0');
      if (value > kMaxTokenId) return ErrorAt(start, "id too large (the limit is 2^24 - 1)");
      ++pos_;
    }
    bool more_number = pos_ < json_.size() && (json_[pos_] == '.' || json_[pos_] == 'e' ||
                                               json_[pos_] == 'E' || json_[pos_] == '-');
    if (pos_ == start || more_number) {
      return ErrorAt(start, "expected an id (a non-negative integer)");
    }
    *id = value;
    return absl::OkStatus();
  }

  absl::string_view json_;
  absl::string_view path_;
  size_t pos_ = 0;
};

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

}  // namespace

absl::Status ParseVocabularyJson(absl::string_view json, absl::string_view path,
                                 BpeVocabulary* vocabulary) {
  vocabulary->tokens.clear();
  vocabulary->ids.clear();
  std::vector<bool> seen_id;
  std::vector<size_t> id_offsets;
  VocabularyJsonReader reader(json, path);
  absl::Status status = reader.Read(
      [&](std::string symbol, int64_t id, size_t symbol_offset, size_t id_offset) -> absl::Status {
        std::optional<std::string> bytes = SymbolToBytes(symbol);
        if (!bytes) {
          return reader.ErrorAt(symbol_offset, absl::StrCat("symbol ", Quoted(symbol),
                                                            " has a character outside GPT-2's "
                                                            "byte-level alphabet"));
        }
        auto index = static_cast<size_t>(id);
        if (index >= vocabulary->tokens.size()) {
          vocabulary->tokens.resize(index + 1);
          seen_id.resize(index + 1, false);
        }
        if (seen_id[index]) {
          return reader.ErrorAt(id_offset, absl::StrCat("id ", id, " of ", Quoted(symbol),
                                                        " is already the id of another symbol"));
        }
        if (!vocabulary->ids.emplace(*bytes, static_cast<int32_t>(id)).second) {
          return reader.ErrorAt(symbol_offset,
                                absl::StrCat("symbol ", Quoted(symbol), " is listed twice"));
        }
        seen_id[index] = true;
        vocabulary->tokens[index] = std::move(*bytes);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  for (size_t id = 0; id < seen_id.size(); ++id) {
    if (!seen_id[id]) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": no symbol has id ", id,
                                                     " (ids must run from 0 to ",
                                                     seen_id.size() - 1, " without gaps)"));
    }
  }
  for (int byte = 0; byte < 256; ++byte) {
    auto found = vocabulary->ids.find(std::string(1, static_cast<char>(byte)));
    if (found == vocabulary->ids.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", byte);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": no symbol for byte ", hex, " (",
                       Quoted(BytesToSymbol(std::string(1, static_cast<char>(byte)))),
                       "): a GPT-2 vocabulary has one for each of the 256 bytes"));
    }
    vocabulary->byte_ids[byte] = found->second;
  }
  return absl::OkStatus();
}

absl::Status ParseMerges(absl::string_view text, absl::string_view path,
                         BpeVocabulary* vocabulary) {
  vocabulary->merges.clear();
  absl::flat_hash_map<uint64_t, size_t> line_of_pair;
  size_t line_number = 0;
  size_t line_start = 0;
  while (line_start < text.size()) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == absl::string_view::npos) line_end = text.size();
    absl::string_view line = text.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line_number == 1 && line.substr(0, 8) == "#version") continue;

    auto error = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line_number, ": ", message));
    };
    size_t space = line.find(' ');
    if (space == absl::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != absl::string_view::npos) {
      return error(absl::StrCat("expected two symbols separated by one space, got ", Quoted(line)));
    }
    absl::string_view symbols[2] = {line.substr(0, space), line.substr(space + 1)};
    int32_t ids[2];
    std::string merged_bytes;
    for (int side = 0; side < 2; ++side) {
      std::optional<std::string> bytes = SymbolToBytes(symbols[side]);
      if (!bytes) {
        return error(absl::StrCat("symbol ", Quoted(symbols[side]),
                                  " has a character outside GPT-2's byte-level alphabet"));
      }
      auto found = vocabulary->ids.find(*bytes);
      if (found == vocabulary->ids.end()) {
        return error(absl::StrCat("symbol ", Quoted(symbols[side]), " is not in the vocabulary"));
      }
      ids[side] = found->second;
      merged_bytes += *bytes;
    }
    auto merged = vocabulary->ids.find(merged_bytes);
    if (merged == vocabulary->ids.end()) {
      return error(absl::StrCat("the merged symbol ", Quoted(absl::StrCat(symbols[0], symbols[1])),
                                " is not in the vocabulary"));
    }
    uint64_t pair = (static_cast<uint64_t>(ids[0]) << 32) | static_cast<uint32_t>(ids[1]);
    auto [first, inserted] = line_of_pair.emplace(pair, line_number);
    if (!inserted) {
      return error(
          absl::StrCat("merge ", Quoted(line), " is already listed on line ", first->second));
    }
    vocabulary->merges.push_back({ids[0], ids[1], merged->second});
  }
  return absl::OkStatus();
}

}  // namespace sae::tokenizer
