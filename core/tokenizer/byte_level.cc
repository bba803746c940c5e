#include "core/tokenizer/byte_level.h"

#include <array>

namespace sae::tokenizer {
namespace {

// Characters of the alphabet are at most U+0143, so a table of 0x144 entries inverts it.
constexpr char32_t kAlphabetEnd = 0x144;

struct ByteLevelTables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, kAlphabetEnd> char_to_byte{};  // -1: not in the alphabet

  ByteLevelTables() {
    char_to_byte.fill(-1);
    char32_t next_shifted = 0x100;
    for (int byte = 0; byte < 256; ++byte) {
      bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                       (byte >= 0xAE && byte <= 0xFF);
      char32_t c = printable ? static_cast<char32_t>(byte) : next_shifted++;
      byte_to_char[byte] = c;
      char_to_byte[c] = static_cast<int16_t>(byte);
    }
  }
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables tables;
  return tables;
}

}  // namespace

char32_t ByteToSymbolChar(uint8_t byte) { return Tables().byte_to_char[byte]; }

std::optional<std::string> SymbolToBytes(absl::string_view symbol) {
  const ByteLevelTables& tables = Tables();
  std::string bytes;
  bytes.reserve(symbol.size());
  size_t i = 0;
  while (i < symbol.size()) {
    // Alphabet characters take one UTF-8 byte (< 0x80) or two (0x80..0x143); anything longer is
    // outside the alphabet.
    auto lead = static_cast<uint8_t>(symbol[i]);
    char32_t c;
    if (lead < 0x80) {
      c = lead;
      i += 1;
    } else if ((lead & 0xE0) == 0xC0 && lead >= 0xC2 && i + 1 < symbol.size() &&
               (static_cast<uint8_t>(symbol[i + 1]) & 0xC0) == 0x80) {
      c = (static_cast<char32_t>(lead & 0x1F) << 6) | (static_cast<uint8_t>(symbol[i + 1]) & 0x3F);
      i += 2;
    } else {
      return std::nullopt;
    }
    if (c >= kAlphabetEnd || tables.char_to_byte[c] < 0) return std::nullopt;
    bytes.push_back(static_cast<char>(tables.char_to_byte[c]));
  }
  return bytes;
}

std::string BytesToSymbol(absl::string_view bytes) {
  std::string symbol;
  symbol.reserve(bytes.size() * 2);
  for (char byte : bytes) {
    char32_t c = ByteToSymbolChar(static_cast<uint8_t>(byte));
    if (c < 0x80) {
      symbol.push_back(static_cast<char>(c));
    } else {
      symbol.push_back(static_cast<char>(0xC0 | (c >> 6)));
      symbol.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return symbol;
}

}  // namespace sae::tokenizer
