#include "services/common/sae_transfer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace sae::service {
namespace {

sparse::SaeParameters RandomSae(int64_t d_in, int64_t d_sae) {
  at::manual_seed(3);
  sparse::SaeParameters p;
  p.W_enc = at::randn({d_in, d_sae});
  p.b_enc = at::randn({d_sae});
  p.W_dec = at::randn({d_sae, d_in});
  p.b_dec = at::randn({d_in});
  return p;
}

sparse::SaeOptions Options(int64_t d_in, int64_t d_sae) {
  sparse::SaeOptions o;
  o.d_in = d_in;
  o.d_sae = d_sae;
  return o;
}

std::vector<v1::EvaluateSaeRequest> Pieces(const sparse::SaeParameters& p) {
  v1::EvaluateSaeRequest first;
  first.set_run_id("run-abcde");
  first.set_step(7);
  std::vector<v1::EvaluateSaeRequest> pieces;
  EXPECT_TRUE(SendSaePieces(p, first, [&](const v1::EvaluateSaeRequest& piece) {
                pieces.push_back(piece);
                return true;
              }).ok());
  return pieces;
}

TEST(SaeTransferTest, RoundTripsInPiecesUnderTheMessageLimit) {
  // 600 x 1000 = 600k elements: W_enc and W_dec take three pieces each.
  const sparse::SaeParameters p = RandomSae(600, 1000);
  const std::vector<v1::EvaluateSaeRequest> pieces = Pieces(p);
  ASSERT_EQ(pieces.size(), 3u + 1u + 3u + 1u);
  EXPECT_EQ(pieces[0].run_id(), "run-abcde");
  EXPECT_EQ(pieces[0].step(), 7);
  EXPECT_TRUE(pieces[1].run_id().empty());
  for (const auto& piece : pieces) EXPECT_LE(piece.ByteSizeLong(), 4u << 20);
  SaeAssembler assembler;
  for (const auto& piece : pieces) ASSERT_TRUE(assembler.Add(piece).ok());
  absl::StatusOr<sparse::SaeParameters> back = assembler.Finish(Options(600, 1000));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(back->W_enc, p.W_enc));
  EXPECT_TRUE(at::equal(back->b_enc, p.b_enc));
  EXPECT_TRUE(at::equal(back->W_dec, p.W_dec));
  EXPECT_TRUE(at::equal(back->b_dec, p.b_dec));
}

TEST(SaeTransferTest, RefusesAnSaeOfAnotherShapeNamingBoth) {
  SaeAssembler assembler;
  for (const auto& piece : Pieces(RandomSae(8, 32))) ASSERT_TRUE(assembler.Add(piece).ok());
  absl::Status status = assembler.Finish(Options(8, 64)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              testing::AllOf(testing::HasSubstr("[8, 32]"), testing::HasSubstr("[8, 64]")));
}

TEST(SaeTransferTest, RefusesMissingOutOfOrderAndUnknownPieces) {
  std::vector<v1::EvaluateSaeRequest> pieces = Pieces(RandomSae(600, 1000));
  {
    SaeAssembler assembler;  // the last piece of W_dec is lost
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (i != 6) ASSERT_TRUE(assembler.Add(pieces[i]).ok());
    }
    absl::Status status = assembler.Finish(Options(600, 1000)).status();
    EXPECT_THAT(std::string(status.message()), testing::HasSubstr("W_dec"));
  }
  {
    SaeAssembler assembler;  // a piece of W_enc twice
    ASSERT_TRUE(assembler.Add(pieces[0]).ok());
    EXPECT_EQ(assembler.Add(pieces[0]).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    SaeAssembler assembler;
    v1::EvaluateSaeRequest odd = pieces[3];
    odd.set_tensor("W_gate");
    EXPECT_THAT(std::string(assembler.Add(odd).message()), testing::HasSubstr("W_gate"));
    v1::EvaluateSaeRequest torn = pieces[3];
    torn.mutable_data()->pop_back();
    EXPECT_THAT(std::string(assembler.Add(torn).message()), testing::HasSubstr("float32"));
  }
  {
    SaeAssembler assembler;  // nothing of b_dec
    for (size_t i = 0; i + 1 < pieces.size(); ++i) ASSERT_TRUE(assembler.Add(pieces[i]).ok());
    EXPECT_THAT(std::string(assembler.Finish(Options(600, 1000)).status().message()),
                testing::HasSubstr("lack b_dec"));
  }
}

}  // namespace
}  // namespace sae::service
