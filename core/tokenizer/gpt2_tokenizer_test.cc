#include "core/tokenizer/gpt2_tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/byte_level.h"
#include "core/util/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/real_tokenizer.h"
#include "support/temp_dir.h"

namespace sae::tokenizer {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

const char kFetchHint[] = "run scripts/fetch-assets.sh to install the real GPT-2 files";

// The tokenizer on the real GPT-2 files (DefaultTokenizerDir()), loaded once (tests/support).
class RealGpt2TokenizerTest : public support::RealTokenizerTest {
 protected:
  // Encodes `text`, checks that decoding gives `text` back, and returns the ids.
  static std::vector<int32_t> EncodeAndCheckRoundTrip(std::string_view text) {
    std::vector<int32_t> ids = tokenizer()->Encode(text);
    absl::StatusOr<std::string> decoded = tokenizer()->Decode(ids);
    EXPECT_TRUE(decoded.ok()) << decoded.status();
    if (decoded.ok()) EXPECT_EQ(*decoded, text);
    return ids;
  }

};

TEST_F(RealGpt2TokenizerTest, EncodesHelloWorldAs15496And995) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("Hello world"), ElementsAre(15496, 995));
}

TEST_F(RealGpt2TokenizerTest, HasGpt2sVocabularySize) { EXPECT_EQ(tokenizer()->vocab_size(), 50257); }

TEST_F(RealGpt2TokenizerTest, EncodesTheEmptyTextAsNoIds) {
  EXPECT_TRUE(tokenizer()->Encode("").empty());
}

TEST_F(RealGpt2TokenizerTest, SplitsContractionsAsGpt2Does) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("I'm can't we've they'll she'd you're it's I'M"),
              ElementsAreArray({40, 1101, 460, 470, 356, 1053, 484, 1183, 673, 1549, 345, 821, 340,
                                338, 314, 6, 44}));
}

TEST_F(RealGpt2TokenizerTest, EncodesDigitsAndNumbers) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("12345 67 3.14159 2024-01-01"),
              ElementsAreArray({10163, 2231, 8275, 513, 13, 1415, 19707, 48609, 12, 486, 12, 486}));
  EXPECT_THAT(EncodeAndCheckRoundTrip("x\u00b2 \u216b \u00bd \uff11\uff12\uff13 \u0661\u0662"),
              ElementsAreArray({87, 31185, 2343, 227, 104, 25208, 27332, 120, 239, 171, 120, 240,
                                171, 120, 241, 18923, 94, 149, 95}));
}

TEST_F(RealGpt2TokenizerTest, KeepsRunsOfSpacesAndNewlinesAsGpt2Does) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("a   b\n\n\nc  \n d\t\tx  "),
              ElementsAreArray(
                  {64, 220, 220, 275, 628, 198, 66, 220, 220, 198, 288, 197, 197, 87, 220, 220}));
}

TEST_F(RealGpt2TokenizerTest, EncodesNonLatinScripts) {
  EXPECT_THAT(
      EncodeAndCheckRoundTrip("\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440"),
      ElementsAreArray({140, 253, 21169, 18849, 38857, 16843, 20375, 12466, 120, 18849, 21169}));
  EXPECT_THAT(EncodeAndCheckRoundTrip("\u3053\u3093\u306b\u3061\u306f\u4e16\u754c"),
              ElementsAreArray({46036, 22174, 28618, 2515, 94, 31676, 10310, 244, 45911, 234}));
  EXPECT_THAT(
      EncodeAndCheckRoundTrip("\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627"
                              "\u0644\u0645"),
      ElementsAreArray(
          {25405, 26897, 148, 255, 39848, 12919, 17550, 101, 23525, 44690, 23525, 25405}));
}

TEST_F(RealGpt2TokenizerTest, EncodesEmoji) {
  EXPECT_THAT(
      EncodeAndCheckRoundTrip("I \u2764\ufe0f \U0001f980 \U0001f44d\U0001f3fd!"),
      ElementsAreArray({40, 43074, 97, 37929, 12520, 99, 222, 50169, 235, 8582, 237, 121, 0}));
}

TEST_F(RealGpt2TokenizerTest, EncodesEndOfTextAnywhereAsTheSingleToken50256) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("<|endoftext|>"), ElementsAre(kEndOfText));
  EXPECT_THAT(EncodeAndCheckRoundTrip("a<|endoftext|>b"), ElementsAre(64, kEndOfText, 65));
  EXPECT_THAT(EncodeAndCheckRoundTrip("<|endoftext|><|endoftext|>"),
              ElementsAre(kEndOfText, kEndOfText));
  EXPECT_THAT(EncodeAndCheckRoundTrip(" <|endoftext|> x"), ElementsAre(220, kEndOfText, 2124));
  // Only the whole marker is special.
  EXPECT_THAT(EncodeAndCheckRoundTrip("<|endoftext"), ElementsAre(27, 91, 437, 1659, 5239));
}

// Unicode's White_Space, which OpenAI's encoder.py (Python's regex module), tiktoken and Hugging
// Face use for \s, holds U+0085 but neither U+FEFF nor U+180E. (JavaScript's \s differs on the
// first two and PCRE2's on the last.) The ids are those of OpenAI's encoder.py.
TEST_F(RealGpt2TokenizerTest, TreatsExactlyUnicodeWhiteSpaceAsSpace) {
  EXPECT_THAT(EncodeAndCheckRoundTrip("a \u0085b"), ElementsAre(64, 220, 126, 227, 65));
  EXPECT_THAT(EncodeAndCheckRoundTrip("a \ufeffb"), ElementsAre(64, 27332, 119, 123, 65));
  EXPECT_THAT(EncodeAndCheckRoundTrip("a \u180eb"), ElementsAre(64, 28053, 254, 236, 65));
}

TEST_F(RealGpt2TokenizerTest, RoundTripsArbitraryBytesIncludingInvalidUtf8) {
  std::mt19937 random(20240607);
  for (int i = 0; i < 500; ++i) {
    std::string bytes(std::uniform_int_distribution<int>(0, 300)(random), '\0');
    for (char& byte : bytes) byte = static_cast<char>(random());
    EncodeAndCheckRoundTrip(bytes);
  }
  // Truncated sequences, overlong forms, encoded surrogates, lone continuation bytes.
  for (std::string_view bytes :
       {"\xe2\x82", "a\xc0\xafz", "\xed\xa0\x80\xed\xb0\x80", "\x80\x80 x", "it'\xffs",
        "\xf4\x90\x80\x80!", " \xff\xfe\xfd<|endoftext|>\xff"}) {
    EncodeAndCheckRoundTrip(bytes);
  }
}

TEST_F(RealGpt2TokenizerTest, EncodesAnInvalidByteAsItsOwnByteToken) {
  std::vector<int32_t> byte_ff = tokenizer()->Encode("\xff");
  ASSERT_EQ(byte_ff.size(), 1u);
  // The invalid byte splits from the letters around it as U+FFFD would.
  EXPECT_THAT(EncodeAndCheckRoundTrip("a\xff"
                                      "b"),
              ElementsAre(64, byte_ff[0], 65));
}

TEST_F(RealGpt2TokenizerTest, DecodesEverySingleTokenToItsBytes) {
  for (int32_t id = 0; id < tokenizer()->vocab_size(); ++id) {
    absl::StatusOr<std::string> bytes = tokenizer()->Decode({id});
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    ASSERT_FALSE(bytes->empty()) << "token " << id;
  }
  EXPECT_EQ(tokenizer()->Decode({kEndOfText}).value(), "<|endoftext|>");
  EXPECT_EQ(tokenizer()->Decode({}).value(), "");
}

TEST_F(RealGpt2TokenizerTest, RejectsIdsOutsideTheVocabularyNamingTheId) {
  absl::StatusOr<std::string> too_large = tokenizer()->Decode({15496, 50257});
  EXPECT_EQ(too_large.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_large.status().message(), HasSubstr("50257"));
  absl::StatusOr<std::string> negative = tokenizer()->Decode({-1});
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.status().message(), HasSubstr("-1"));
}

TEST_F(RealGpt2TokenizerTest, EncodesLongRunsOfSpacesAndLongWords) {
  std::string spaces = std::string(1 << 20, ' ') + "x";
  std::vector<int32_t> ids = EncodeAndCheckRoundTrip(spaces);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), 2124);  // " x"
  EncodeAndCheckRoundTrip(std::string(100000, 'a'));
  EncodeAndCheckRoundTrip(std::string(100000, '\n'));
  EncodeAndCheckRoundTrip(std::string(50000, '\xff'));
}

TEST_F(RealGpt2TokenizerTest, EncodesFromManyThreadsAsFromOne) {
  std::vector<std::string> texts;
  std::mt19937 random(7);
  for (int i = 0; i < 200; ++i) {
    std::string text;
    for (int j = 0; j < 40; ++j) {
      text += absl::StrCat(" word", random() % 5000, j % 7 == 0 ? "'s, " : " ");
    }
    texts.push_back(text);
  }
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& text : texts) expected.push_back(tokenizer()->Encode(text));

  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          size_t k = (i + static_cast<size_t>(t) * 37) % texts.size();  // threads start apart
          if (tokenizer()->Encode(texts[k]) != expected[k]) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0, 0, 0));
}

// Fixtures for loading: a fresh folder per test (support::TempDir).
class Gpt2TokenizerLoadingTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, absl::string_view contents) {
    ASSERT_TRUE(WriteFileAtomically(absl::StrCat(folder_, "/", name), contents).ok());
  }

  // A small valid vocabulary: the 256 bytes (ids 0..255), then "ab" (256) and "abc" (257), one
  // entry per line.
  static std::string SmallVocabularyJson() {
    std::string json = "{\n";
    for (int byte = 0; byte < 256; ++byte) {
      std::string symbol = BytesToSymbol(std::string(1, static_cast<char>(byte)));
      std::string escaped = symbol == "\"" ? "\\\"" : symbol == "\\" ? "\\\\" : symbol;
      absl::StrAppend(&json, "  \"", escaped, "\": ", byte, ",\n");
    }
    absl::StrAppend(&json, "  \"ab\": 256,\n  \"abc\": 257\n}\n");
    return json;
  }

  const support::TempDir dir_{"gpt2_tokenizer_test"};
  const std::string folder_ = dir_.path();
};

TEST_F(Gpt2TokenizerLoadingTest, ReadsOpenAiAndHuggingFaceFileNamesAlike) {
  std::string real = DefaultTokenizerDir();
  for (const char* name : {"encoder.json", "vocab.bpe"}) {
    ASSERT_TRUE(std::filesystem::exists(absl::StrCat(real, "/", name)))
        << real << "/" << name << " is missing: " << kFetchHint;
  }
  std::filesystem::copy_file(real + "/encoder.json", folder_ + "/vocab.json");
  std::filesystem::copy_file(real + "/vocab.bpe", folder_ + "/merges.txt");
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> hugging_face = Gpt2Tokenizer::Load(folder_);
  ASSERT_TRUE(hugging_face.ok()) << hugging_face.status();
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> open_ai = Gpt2Tokenizer::Load(real);
  ASSERT_TRUE(open_ai.ok()) << open_ai.status();
  std::string text = "Hello world, it's 2024 \u2764 <|endoftext|> again";
  EXPECT_EQ((*hugging_face)->Encode(text), (*open_ai)->Encode(text));
  EXPECT_THAT((*hugging_face)->Encode("Hello world"), ElementsAre(15496, 995));
}

TEST_F(Gpt2TokenizerLoadingTest, LoadsASmallVocabularyAndAppliesItsMerges) {
  Write("vocab.json", SmallVocabularyJson());
  Write("merges.txt", "#version: 0.2\na b\r\nab c\n\n");
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> tokenizer = Gpt2Tokenizer::Load(folder_);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 258);
  EXPECT_THAT((*tokenizer)->Encode("abcab abx"),
              ElementsAre(257, 256, ' ', 256, 'x'));  // single bytes keep ids 0..255
  // Without "<|endoftext|>" in the vocabulary, the marker is ordinary text: here one id a byte.
  EXPECT_EQ((*tokenizer)->Encode("<|endoftext|>").size(), 13u);
}

TEST_F(Gpt2TokenizerLoadingTest, MissingFolderIsNotFoundNamingItAndBothFileNamePairs) {
  std::string missing = folder_ + "/nowhere";
  absl::Status status = Gpt2Tokenizer::Load(missing).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  for (const char* part : {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe"}) {
    EXPECT_THAT(status.message(), HasSubstr(part));
  }
  EXPECT_THAT(status.message(), HasSubstr(missing));
}

TEST_F(Gpt2TokenizerLoadingTest, IncompleteFilePairIsNotFoundNamingTheFolder) {
  Write("vocab.json", SmallVocabularyJson());
  Write("vocab.bpe", "a b\n");
  absl::Status status = Gpt2Tokenizer::Load(folder_).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(folder_));
  EXPECT_THAT(status.message(), HasSubstr("merges.txt"));
}

TEST_F(Gpt2TokenizerLoadingTest, CorruptVocabularyIsInvalidArgumentNamingFileAndLine) {
  struct Case {
    std::string json;
    std::string where;
  };
  std::string valid = SmallVocabularyJson();
  std::vector<Case> cases = {
      {"{\n  \"a\": 0,\n  \"b\": x\n}\n", "vocab.json:3:"},        // not a number
      {"{\n  \"a\": 0,\n  \"b\" 1\n}\n", "vocab.json:3:"},         // missing ':'
      {"{\n  \"a\": 0,\n  \"a\": 1\n}\n", "vocab.json:3:"},        // duplicate symbol
      {"{\n  \"a\": 0,\n  \"b\": 0\n}\n", "vocab.json:3:"},        // duplicate id
      {"{\n  \"a\": 0,\n  \"b c\": 1\n}\n", "vocab.json:3:"},      // ' ' is not a symbol char
      {"{\n  \"a\": 0,\n  \"b\": -1\n}\n", "vocab.json:3:"},       // negative id
      {"{\n  \"a\": 0,\n  \"b\": 1.5\n}\n", "vocab.json:3:"},      // fraction
      {"{\n  \"a\": 0,\n  \"\\ud800\": 1\n}\n", "vocab.json:3:"},  // lone surrogate
      {"{\n  \"a\": 0,\n  \"b\": 1\n", "vocab.json:4:"},           // unterminated object
      {"{\n  \"a\": 0\n}\n{}", "vocab.json:4:"},                   // trailing text
      {"{\n  \"a\": 0,\n  \"b\": 2\n}\n", "vocab.json: no symbol has id 1"},  // gap
      {"{\n  \"a\": 0\n}\n", "no symbol for byte 0x00"},                      // bytes missing
  };
  for (const Case& c : cases) {
    Write("vocab.json", c.json);
    Write("merges.txt", "");
    absl::Status status = Gpt2Tokenizer::Load(folder_).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(status.message(), HasSubstr(c.where)) << c.json;
  }
}

TEST_F(Gpt2TokenizerLoadingTest, BadMergesLineIsInvalidArgumentNamingFileAndLine) {
  Write("vocab.json", SmallVocabularyJson());
  struct Case {
    std::string merges;
    std::string message;
  };
  std::vector<Case> cases = {
      {"#version: 0.2\na b\nabc\n", "merges.txt:3: expected two symbols"},
      {"#version: 0.2\na b\nab  c\n", "merges.txt:3: expected two symbols"},
      {"a b\nab c d\n", "merges.txt:2: expected two symbols"},
      {"a b\nx y\n", "merges.txt:2: the merged symbol \"xy\" is not in the vocabulary"},
      {"a b\nab zz\n", "merges.txt:2: symbol \"zz\" is not in the vocabulary"},
      {"a b\na b\n", "merges.txt:2: merge \"a b\" is already listed on line 1"},
      {"a \xe2\x82\xac\n", "merges.txt:1: symbol \"\xe2\x82\xac\" has a character outside"},
  };
  for (const Case& c : cases) {
    Write("merges.txt", c.merges);
    absl::Status status = Gpt2Tokenizer::Load(folder_).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.merges;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.merges;
    EXPECT_THAT(status.message(), HasSubstr(folder_)) << c.merges;
  }
}

TEST(DefaultTokenizerDirTest, PrefersSaeTokenizerDirThenSaeCacheDirThenXdgCacheHome) {
  std::optional<std::string> saved[3];
  const char* names[3] = {"SAE_TOKENIZER_DIR", "SAE_CACHE_DIR", "XDG_CACHE_HOME"};
  for (int i = 0; i < 3; ++i) {
    if (const char* value = std::getenv(names[i])) saved[i] = value;
  }
  ::setenv("SAE_TOKENIZER_DIR", "/t", 1);
  ::setenv("SAE_CACHE_DIR", "/c", 1);
  ::setenv("XDG_CACHE_HOME", "/x", 1);
  EXPECT_EQ(DefaultTokenizerDir(), "/t");
  ::unsetenv("SAE_TOKENIZER_DIR");
  EXPECT_EQ(DefaultTokenizerDir(), "/c/gpt2-tokenizer");
  ::setenv("SAE_CACHE_DIR", "", 1);
  EXPECT_EQ(DefaultTokenizerDir(), "/x/sae-service/gpt2-tokenizer");
  ::unsetenv("XDG_CACHE_HOME");
  EXPECT_THAT(DefaultTokenizerDir(), HasSubstr("/.cache/sae-service/gpt2-tokenizer"));
  for (int i = 0; i < 3; ++i) {
    if (saved[i]) {
      ::setenv(names[i], saved[i]->c_str(), 1);
    } else {
      ::unsetenv(names[i]);
    }
  }
}

}  // namespace
}  // namespace sae::tokenizer
