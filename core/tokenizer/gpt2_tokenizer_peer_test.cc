// Differential test: our tokenizer against js-tiktoken's r50k_base (GPT-2's encoding) run
// through Node.js, over hand-picked and generated strings.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "gtest/gtest.h"
#include "support/peer_tokenizer.h"

namespace sae::tokenizer {
namespace {

using support::JsTiktokenPeer;

// Code points left out of the generated strings because the peer is known to differ on them;
// known-id tests cover the first two.
//  - U+0085 and U+FEFF: JavaScript's \s lacks U+0085 and holds U+FEFF, unlike Unicode's
//    White_Space (used by OpenAI's encoder.py, tiktoken, Hugging Face, and us).
//  - Letters and numbers that Node's Unicode 17 tables know but PCRE2 10.42's Unicode 14 tables
//    do not (in the BMP; the generator draws from the SMP only in blocks complete by Unicode 14).
constexpr std::pair<char32_t, char32_t> kExcludedRanges[] = {
    {0x0085, 0x0085}, {0xFEFF, 0xFEFF}, {0x088F, 0x088F}, {0x0C5C, 0x0C5C},
    {0x0CDC, 0x0CDC}, {0x1C89, 0x1C8A}, {0xA7CB, 0xA7CF}, {0xA7D2, 0xA7D2},
    {0xA7D4, 0xA7D4}, {0xA7DA, 0xA7DC}, {0xA7F1, 0xA7F1},
};

bool Excluded(char32_t c) {
  if (c >= 0xD800 && c <= 0xDFFF) return true;  // surrogates have no UTF-8 form
  for (auto [first, last] : kExcludedRanges) {
    if (c >= first && c <= last) return true;
  }
  return false;
}

void AppendUtf8(char32_t c, std::string* out) {
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

// Strings a reader would pick to probe a GPT-2 tokenizer.
std::vector<std::string> HandPickedStrings() {
  return {
      "Hello world",
      "The quick brown fox jumps over the lazy dog.",
      "It's 5 o'clock somewhere; isn't it? We'd've gone, y'all'd've too.",
      "'s 't 're 've 'm 'll 'd 'S 'T 'RE rock'n'roll ''quoted'' '''",
      "I'M SHOUTING, YOU'RE NOT",
      "  leading spaces and trailing spaces   ",
      "tabs\tand\t\ttabs \t \t",
      "windows\r\nline\r\nendings\r\n",
      "\n\n\nmany\n\n\n\nnewlines\n",
      " \n \n \n",
      "   ",
      "\t",
      "x",
      "1234567890 0.5 -3 +4e10 1,000,000 0x1F 007",
      "\uff11\uff12\uff13 \u0661\u0662\u0663 \u0967\u0968 x\u00b2 \u216b \u00bd \u2460",
      "def f(x):\n    return x ** 2  # square\n",
      "for (int i = 0; i < n; ++i) { sum += a[i]; }",
      "{\"key\": [1, 2, {\"nested\": null}], \"url\": \"https://example.com/a?b=c&d=e\"}",
      "email@example.com #hashtag @mention $100 50% a&b <tag attr=\"v\"/>",
      "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe \u00c5ngstr\u00f6m",
      "e\u0301 n\u0303 a\u030a combining marks",
      "\u0391\u03b8\u03ae\u03bd\u03b1 \u03ba\u03b1\u03b9 \u03a3\u03c0\u03ac\u03c1\u03c4\u03b7",
      "\u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0441\u0442\u043e\u043b\u0438\u0446\u0430",
      "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
      "\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645",
      "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
      "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
      "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
      "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u6211\u662f\u4e00\u4e2a\u6a21\u578b\u3002",
      "\u3053\u3093\u306b\u3061\u306f\u3001\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a",
      "\U0001f600\U0001f601 \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467",
      "\U0001f1fa\U0001f1f8 \u2764\ufe0f flags and hearts",
      "\u2200x\u2208\u211d: x\u00b2 \u2265 0 \u222b f dx \u2211 \u221e",
      "\U0001d400\U0001d401\U0001d402 mathematical bold",
      "\u00a0nbsp\u00a0\u00a0and\u3000ideographic\u2003em\u2009thin\u2028line\u2029para",
      "zero\u200bwidth\u200cnon\u200djoiner",
      "control\x01\x02\x1b[0m\x7f chars",
      "<|endoftext|>",
      "text<|endoftext|>more text",
      "  <|endoftext|>  ",
      "<|endoftext|><|endoftext|>\n<|endoftext|>",
      "<|endoftext <|endoftext|| <endoftext|>",
      "\ufffd replacement \ufffd\ufffd",
      "a\U0010fffd private use \ue000",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!??????????????????.............",
      "https://en.wikipedia.org/wiki/Byte_pair_encoding#Algorithm",
      "SELECT * FROM users WHERE name = 'O''Brien';",
      "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
  };
}

// Generated strings: runs of atoms from ASCII words, digits, punctuation, white space,
// contractions, scripts, emoji, combining marks and uniformly random code points.
std::vector<std::string> GeneratedStrings(int count, uint32_t seed) {
  std::mt19937 random(seed);
  auto uniform = [&](int low, int high) {
    return std::uniform_int_distribution<int>(low, high)(random);
  };
  auto code_point_in = [&](char32_t first, char32_t last) {
    return static_cast<char32_t>(uniform(static_cast<int>(first), static_cast<int>(last)));
  };
  const std::vector<std::pair<char32_t, char32_t>> blocks = {
      {0x00A0, 0x024F},   {0x0370, 0x03FF},   {0x0400, 0x04FF},   {0x0590, 0x05FF},
      {0x0600, 0x06FF},   {0x0900, 0x097F},   {0x0E00, 0x0E7F},   {0x1100, 0x11FF},
      {0x2000, 0x206F},   {0x20A0, 0x20CF},   {0x2100, 0x22FF},   {0x2460, 0x24FF},
      {0x2500, 0x27BF},   {0x3000, 0x30FF},   {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},
      {0xFF00, 0xFFEF},   {0x0300, 0x036F},   {0x10000, 0x1007F}, {0x1D400, 0x1D7FF},
      {0x1F300, 0x1F64F}, {0x1F680, 0x1F6C5}, {0x20000, 0x2A6DF},
  };
  const std::vector<std::string> contractions = {"'s", "'t", "'re", "'ve", "'m", "'ll",
                                                 "'d", "'S", "'T",  "'RE", "'",  "''"};
  const std::vector<std::string> spaces = {" ",      "  ",   "\t",     "\n",     "\r\n",
                                           "\n\n",   " \n",  "\u00a0", "\u3000", "\u2003",
                                           "\u2028", "\x0b", "\x0c"};
  std::vector<std::string> strings;
  for (int s = 0; s < count; ++s) {
    std::string text;
    int atoms = uniform(1, 30);
    for (int a = 0; a < atoms; ++a) {
      int kind = uniform(0, 99);
      if (kind < 25) {
        int length = uniform(1, 12);
        bool capital = uniform(0, 3) == 0;
        for (int i = 0; i < length; ++i) {
          text.push_back(static_cast<char>((capital && i == 0 ? 'A' : 'a') + uniform(0, 25)));
        }
      } else if (kind < 35) {
        int length = uniform(1, 8);
        for (int i = 0; i < length; ++i) text.push_back(static_cast<char>('0' + uniform(0, 9)));
      } else if (kind < 45) {
        text.push_back("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~"[uniform(0, 30)]);
      } else if (kind < 60) {
        text += spaces[uniform(0, static_cast<int>(spaces.size()) - 1)];
      } else if (kind < 66) {
        text += contractions[uniform(0, static_cast<int>(contractions.size()) - 1)];
      } else if (kind < 88) {
        const auto& [first, last] = blocks[uniform(0, static_cast<int>(blocks.size()) - 1)];
        int length = uniform(1, 6);
        for (int i = 0; i < length; ++i) {
          char32_t c = code_point_in(first, last);
          if (!Excluded(c)) AppendUtf8(c, &text);
        }
      } else if (kind < 98) {
        // Any code point of the BMP, assigned or not, private use included.
        char32_t c = code_point_in(0x01, 0xFFFD);
        if (!Excluded(c)) AppendUtf8(c, &text);
      } else {
        text += "<|endoftext|>";
      }
    }
    strings.push_back(std::move(text));
  }
  return strings;
}

std::string Escaped(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

TEST(Gpt2TokenizerVsJsTiktokenTest, GiveIdenticalIdsOnHandPickedAndGeneratedStrings) {
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> tokenizer =
      Gpt2Tokenizer::Load(DefaultTokenizerDir());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status() << " (run scripts/fetch-assets.sh)";
  absl::StatusOr<JsTiktokenPeer> peer = JsTiktokenPeer::Find();
  ASSERT_TRUE(peer.ok()) << "the peer tokenizer cannot run: " << peer.status();

  std::vector<std::string> texts = HandPickedStrings();
  std::vector<std::string> generated = GeneratedStrings(400, 20240607);
  texts.insert(texts.end(), generated.begin(), generated.end());
  ASSERT_GE(texts.size(), 400u);

  absl::StatusOr<std::vector<std::vector<int32_t>>> expected = peer->Encode(texts);
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_EQ(expected->size(), texts.size());

  int mismatches = 0;
  int64_t total_ids = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = (*tokenizer)->Encode(texts[i]);
    total_ids += static_cast<int64_t>(ids.size());
    if (ids != (*expected)[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "text #" << i << " \"" << Escaped(texts[i])
                    << "\"\n  ours:        " << absl::StrJoin(ids, ",")
                    << "\n  js-tiktoken: " << absl::StrJoin((*expected)[i], ",");
    }
    absl::StatusOr<std::string> decoded = (*tokenizer)->Decode(ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, texts[i]) << "round trip of text #" << i;
  }
  EXPECT_EQ(mismatches, 0) << "of " << texts.size() << " texts";
  EXPECT_GT(total_ids, 10000);
}

}  // namespace
}  // namespace sae::tokenizer
