#include "core/tokenizer/pre_tokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::tokenizer {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Split(absl::string_view text) {
  static const PreTokenizer* const pre_tokenizer = PreTokenizer::Create().value().release();
  std::vector<std::string> pieces;
  pre_tokenizer->Split(text, [&](absl::string_view piece) { pieces.emplace_back(piece); });
  return pieces;
}

TEST(PreTokenizerTest, SplitsWordsContractionsNumbersAndPunctuationAsGpt2Does) {
  EXPECT_THAT(Split("Hello world's  end\n"),
              ElementsAre("Hello", " world", "'s", " ", " end", "\n"));
  EXPECT_THAT(Split("I'LL pay $12.50, ok?"),
              ElementsAre("I", "'", "LL", " pay", " $", "12", ".", "50", ",", " ok", "?"));
  EXPECT_THAT(Split("x  \n\n  y  "), ElementsAre("x", "  \n\n ", " y", "  "));
  EXPECT_THAT(Split("\u00e9t\u00e9 \u4e16\u754c2"),
              ElementsAre("\u00e9t\u00e9", " \u4e16\u754c", "2"));
}

TEST(PreTokenizerTest, TreatsExactlyUnicodeWhiteSpaceAsSpace) {
  EXPECT_THAT(Split("a\u0085 b"), ElementsAre("a", "\u0085", " b"));  // White_Space
  EXPECT_THAT(Split("a \u180eb"), ElementsAre("a", " \u180e", "b"));  // a format character
  EXPECT_THAT(Split("a \ufeffb"), ElementsAre("a", " \ufeff", "b"));  // a format character
  EXPECT_THAT(Split("a\u3000\u3000b"), ElementsAre("a", "\u3000", "\u3000", "b"));
}

TEST(PreTokenizerTest, SplitsInvalidBytesAsReplacementCharactersWouldAndKeepsThem) {
  // As if each invalid byte were U+FFFD: neither letter, number nor space.
  EXPECT_THAT(Split("ab\xff\xfe cd\x80"), ElementsAre("ab", "\xff\xfe", " cd", "\x80"));
  EXPECT_THAT(Split("it'\xffs"), ElementsAre("it", "'\xff", "s"));
  EXPECT_THAT(Split("\xed\xa0\x80!x"), ElementsAre("\xed\xa0\x80!", "x"));  // a UTF-8 surrogate
  EXPECT_THAT(Split("\xe2\x82 \xe2\x82\xac"), ElementsAre("\xe2\x82", " \xe2\x82\xac"));
}

TEST(PreTokenizerTest, PiecesAreNonEmptyAndConcatenateToAnyInput) {
  std::mt19937 random(11);
  for (int i = 0; i < 2000; ++i) {
    std::string text(std::uniform_int_distribution<int>(0, 64)(random), '\0');
    // Mostly ASCII with some high bytes, so valid and invalid UTF-8 both occur.
    for (char& c : text) c = static_cast<char>(random() % 4 == 0 ? random() : random() % 128);
    std::string joined;
    for (const std::string& piece : Split(text)) {
      ASSERT_FALSE(piece.empty());
      joined += piece;
    }
    ASSERT_EQ(joined, text);
  }
}

TEST(PreTokenizerTest, SplitsAMegabyteOfSpacesWithoutRunningOutOfStack) {
  std::string text = std::string(1 << 20, ' ') + "x";
  std::vector<std::string> pieces = Split(text);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].size(), (1u << 20) - 1);
  EXPECT_EQ(pieces[1], " x");
}

TEST(PreTokenizerTest, RecognisesWellFormedUtf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ASCII text, long enough for the eight-byte path"));
  EXPECT_TRUE(IsValidUtf8("\u00e9\u20ac\U0001f980\U0010ffff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate U+D800
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xe2\x82"));  // truncated after an ASCII run
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

}  // namespace
}  // namespace sae::tokenizer
