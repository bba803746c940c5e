#include "core/tokenizer/bpe_model.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "core/tokenizer/bpe_vocabulary.h"
#include "core/tokenizer/byte_level.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::tokenizer {
namespace {

using ::testing::ElementsAre;

// A vocabulary of the 256 bytes (id = byte value) plus `extra` tokens (ids from 256 on), with
// `merges` in rank order as pairs of token texts.
std::unique_ptr<BpeModel> SmallModel(
    const std::vector<std::string>& extra,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  BpeVocabulary vocabulary;
  for (int byte = 0; byte < 256; ++byte) {
    std::string bytes(1, static_cast<char>(byte));
    vocabulary.tokens.push_back(bytes);
    vocabulary.ids[bytes] = byte;
    vocabulary.byte_ids[byte] = byte;
  }
  for (const std::string& token : extra) {
    vocabulary.ids[token] = static_cast<int32_t>(vocabulary.tokens.size());
    vocabulary.tokens.push_back(token);
  }
  for (const auto& [left, right] : merges) {
    vocabulary.merges.push_back(
        {vocabulary.ids.at(left), vocabulary.ids.at(right), vocabulary.ids.at(left + right)});
  }
  return std::make_unique<BpeModel>(std::move(vocabulary));
}

std::vector<int32_t> Merge(const BpeModel& model, absl::string_view piece, size_t max_scanned) {
  std::vector<int32_t> ids;
  model.Merge(piece, &ids, max_scanned);
  return ids;
}

TEST(BpeModelTest, MergesTheLowestRankedPairFirstAndTheLeftmostAmongEquals) {
  // Ranks: "a a" 0, "b c" 1, "a b" 2. In "abc", "b c" (rank 1) wins over "a b" (rank 2).
  auto model = SmallModel({"aa", "bc", "ab"}, {{"a", "a"}, {"b", "c"}, {"a", "b"}});
  for (size_t max_scanned : {size_t{0}, BpeModel::kMaxScannedPiece}) {
    EXPECT_THAT(Merge(*model, "abc", max_scanned), ElementsAre('a', 257));
    EXPECT_THAT(Merge(*model, "aaa", max_scanned), ElementsAre(256, 'a'));
    EXPECT_THAT(Merge(*model, "aaaaa", max_scanned), ElementsAre(256, 256, 'a'));
    EXPECT_THAT(Merge(*model, "xyz", max_scanned), ElementsAre('x', 'y', 'z'));
    EXPECT_THAT(Merge(*model, "", max_scanned), ElementsAre());
  }
}

TEST(BpeModelTest, ReturnsAWholeTokenOnlyWhenTheMergesRebuildIt) {
  // "abc" is a token, but the merges make "a" + "bc" of it, and there is no merge "a bc".
  auto model = SmallModel({"ab", "bc", "abc"}, {{"b", "c"}, {"a", "b"}, {"ab", "c"}});
  std::vector<int32_t> ids;
  EXPECT_FALSE(model->EncodeWhole("abc", &ids));
  EXPECT_TRUE(ids.empty());
  EXPECT_THAT(Merge(*model, "abc", BpeModel::kMaxScannedPiece), ElementsAre('a', 257));
  EXPECT_TRUE(model->EncodeWhole("ab", &ids));
  EXPECT_TRUE(model->EncodeWhole("z", &ids));
  EXPECT_THAT(ids, ElementsAre(256, 'z'));
}

// The real GPT-2 vocabulary, parsed with the library's own readers.
class RealBpeModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string dir = DefaultTokenizerDir();
    BpeVocabulary vocabulary;
    absl::StatusOr<std::string> json = ReadFile(dir + "/encoder.json");
    absl::StatusOr<std::string> merges = ReadFile(dir + "/vocab.bpe");
    if (!json.ok() || !merges.ok() ||
        !ParseVocabularyJson(*json, dir + "/encoder.json", &vocabulary).ok() ||
        !ParseMerges(*merges, dir + "/vocab.bpe", &vocabulary).ok()) {
      return;
    }
    model_ = new BpeModel(std::move(vocabulary));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr) << "cannot read encoder.json + vocab.bpe from "
                               << DefaultTokenizerDir() << ": run scripts/fetch-assets.sh";
  }
  static inline const BpeModel* model_ = nullptr;
};

TEST_F(RealBpeModelTest, RebuildsEveryGpt2TokenButEndOfTextWhole) {
  ASSERT_EQ(model_->size(), 50257);
  for (int32_t id = 0; id < model_->size(); ++id) {
    std::vector<int32_t> ids;
    EXPECT_EQ(model_->EncodeWhole(model_->TokenBytes(id), &ids), id != kEndOfText) << id;
  }
}

TEST_F(RealBpeModelTest, HeapAndScanningMergeLoopsAgree) {
  std::mt19937 random(5);
  const std::string letters = "etaoinshrdlu ETAOIN";
  for (int i = 0; i < 3000; ++i) {
    std::string piece(std::uniform_int_distribution<int>(1, 200)(random), '\0');
    bool text_like = i % 2 == 0;
    for (char& c : piece) {
      c = text_like ? letters[random() % letters.size()] : static_cast<char>(random());
    }
    ASSERT_EQ(Merge(*model_, piece, 0), Merge(*model_, piece, piece.size())) << piece;
  }
}

}  // namespace
}  // namespace sae::tokenizer
