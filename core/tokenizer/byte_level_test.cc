#include "core/tokenizer/byte_level.h"

#include <string>

#include "gtest/gtest.h"

namespace sae::tokenizer {
namespace {

TEST(ByteLevelTest, SpellsPrintableBytesAsThemselvesAndOthersFromU0100) {
  EXPECT_EQ(ByteToSymbolChar('a'), U'a');
  EXPECT_EQ(ByteToSymbolChar(0xE9), U'\u00e9');
  EXPECT_EQ(ByteToSymbolChar(0x00), U'\u0100');
  EXPECT_EQ(ByteToSymbolChar(' '), U'\u0120');   // 'Ġ'
  EXPECT_EQ(ByteToSymbolChar('\n'), U'\u010a');  // 'Ċ'
  EXPECT_EQ(ByteToSymbolChar(0xAD), U'\u0143');  // the last of the 68 shifted bytes
}

TEST(ByteLevelTest, SymbolToBytesInvertsBytesToSymbolForEveryByte) {
  std::string all_bytes;
  for (int byte = 0; byte < 256; ++byte) all_bytes.push_back(static_cast<char>(byte));
  EXPECT_EQ(SymbolToBytes(BytesToSymbol(all_bytes)), all_bytes);
  EXPECT_EQ(SymbolToBytes("\xc4\xa0world"), " world");
}

TEST(ByteLevelTest, RejectsCharactersOutsideTheAlphabet) {
  EXPECT_EQ(SymbolToBytes(" "), std::nullopt);             // a raw space is spelled 'Ġ'
  EXPECT_EQ(SymbolToBytes("\xe2\x82\xac"), std::nullopt);  // '€'
  EXPECT_EQ(SymbolToBytes("\xc5\x84"), std::nullopt);      // U+0144, just past the alphabet
  EXPECT_EQ(SymbolToBytes("\xc4"), std::nullopt);          // truncated UTF-8
}

}  // namespace
}  // namespace sae::tokenizer
