#include "core/data/context_packing.h"

#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sae::data {
namespace {

using ::testing::ElementsAre;

constexpr int32_t B = 50256;

PackingOptions Packing(int64_t context_size, bool prepend_bos = true) {
  PackingOptions options;
  options.context_size = context_size;
  options.prepend_bos = prepend_bos;
  options.bos_token_id = B;
  return options;
}

TEST(ContextPackingTest, EveryContextStartsWithBosAndHoldsExactlyContextSizeIds) {
  std::vector<std::vector<int32_t>> contexts =
      PackDocuments(Packing(5), {{1, 2}, {3, 4, 5, 6, 7, 8, 9}, {10}, {11, 12, 13, 14}});
  ASSERT_FALSE(contexts.empty());
  for (const std::vector<int32_t>& context : contexts) {
    EXPECT_EQ(context.size(), 5u);
    EXPECT_EQ(context.front(), B);
  }
}

TEST(ContextPackingTest, DocumentsAreConcatenatedEachAfterItsBos) {
  EXPECT_THAT(PackDocuments(Packing(6), {{1, 2}, {3}, {4, 5}, {6, 7, 8, 9}}),
              ElementsAre(ElementsAre(B, 1, 2, B, 3, B), ElementsAre(B, 4, 5, B, 6, 7)));
}

TEST(ContextPackingTest, OverflowingDocumentContinuesInTheNextContextAfterABos) {
  EXPECT_THAT(
      PackDocuments(Packing(4), {{1, 2, 3, 4, 5, 6, 7, 8}, {9, 10}}),
      ElementsAre(ElementsAre(B, 1, 2, 3), ElementsAre(B, 4, 5, 6), ElementsAre(B, 7, 8, B)));
}

TEST(ContextPackingTest, ContextWithRoomOnlyForABosEndsWithItAndTheDocumentStartsOverAfterABos) {
  EXPECT_THAT(PackDocuments(Packing(4), {{1, 2}, {3, 4, 5}, {6, 7}}),
              ElementsAre(ElementsAre(B, 1, 2, B), ElementsAre(B, 3, 4, 5)));
}

TEST(ContextPackingTest, DocumentFillingAContextExactlyLeavesTheNextContextToTheNextDocument) {
  EXPECT_THAT(PackDocuments(Packing(4), {{1, 2, 3}, {4, 5, 6}}),
              ElementsAre(ElementsAre(B, 1, 2, 3), ElementsAre(B, 4, 5, 6)));
}

TEST(ContextPackingTest, WithoutPrependBosDocumentsAreConcatenatedWithNeitherBosNorSeparator) {
  EXPECT_THAT(PackDocuments(Packing(4, /*prepend_bos=*/false), {{1, 2, 3, 4, 5}, {6}, {7, 8, 9}}),
              ElementsAre(ElementsAre(1, 2, 3, 4), ElementsAre(5, 6, 7, 8)));
}

TEST(ContextPackingTest, IncompleteLastContextIsDropped) {
  EXPECT_THAT(PackDocuments(Packing(4), {{1, 2, 3}, {4}}), ElementsAre(ElementsAre(B, 1, 2, 3)));
}

TEST(ContextPackingTest, AppendDocumentPieceReportsHowFarTheDocumentWasConsumed) {
  TokenSequence document = TokenSequence::Owned({1, 2, 3, 4, 5, 6});
  std::vector<int32_t> context = {B, 9};
  size_t consumed = AppendDocumentPiece(Packing(5), document, 0, &context);
  EXPECT_EQ(consumed, 2u);
  EXPECT_THAT(context, ElementsAre(B, 9, B, 1, 2));
  context.clear();
  consumed = AppendDocumentPiece(Packing(5), document, consumed, &context);
  EXPECT_EQ(consumed, 6u);
  EXPECT_THAT(context, ElementsAre(B, 3, 4, 5, 6));
}

TEST(ContextPackingTest, LosesNoIdAndAddsOnlyBosesOnRandomDocuments) {
  std::mt19937 random(7);
  for (int trial = 0; trial < 50; ++trial) {
    int64_t context_size = 2 + random() % 40;
    std::vector<std::vector<int32_t>> documents(1 + random() % 30);
    std::vector<int32_t> all_ids;
    for (std::vector<int32_t>& document : documents) {
      document.resize(1 + random() % 100);
      for (int32_t& id : document) {
        id = static_cast<int32_t>(random() % 50000);
        all_ids.push_back(id);
      }
    }
    for (bool prepend_bos : {true, false}) {
      std::vector<int32_t> packed_ids;
      for (const std::vector<int32_t>& context :
           PackDocuments(Packing(context_size, prepend_bos), documents)) {
        ASSERT_EQ(static_cast<int64_t>(context.size()), context_size);
        if (prepend_bos) ASSERT_EQ(context.front(), B);
        for (int32_t id : context) {
          if (id != B) packed_ids.push_back(id);
        }
      }
      // The contexts hold the documents' ids in order, up to the dropped incomplete context.
      ASSERT_LE(packed_ids.size(), all_ids.size());
      ASSERT_GT(packed_ids.size() + static_cast<size_t>(context_size), all_ids.size());
      EXPECT_TRUE(std::equal(packed_ids.begin(), packed_ids.end(), all_ids.begin()));
    }
  }
}

}  // namespace
}  // namespace sae::data
