#include "core/wire/activation_codec.h"

#include <gtest/gtest.h>

#include <cstring>

namespace sae::wire {
namespace {

TEST(ActivationCodecTest, Float32IsTheLittleEndianBytesOfEachElementInRowMajorOrder) {
  at::Tensor rows = at::tensor({1.0f, -2.0f, 0.5f, 3.0f}).reshape({2, 2});
  std::string bytes;
  ASSERT_TRUE(EncodeActivations(rows, config::DType::kFloat32, &bytes).ok());
  ASSERT_EQ(bytes.size(), 16u);
  // 1.0f is 0x3f800000, low byte first.
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x00\x00\x80\x3f", 4));
  // -2.0f is 0xc0000000: the second element of the first row.
  EXPECT_EQ(bytes.substr(4, 4), std::string("\x00\x00\x00\xc0", 4));
}

TEST(ActivationCodecTest, RoundTripsFloat32Exactly) {
  at::Tensor rows = at::randn({37, 768});
  std::string bytes;
  ASSERT_TRUE(EncodeActivations(rows, config::DType::kFloat32, &bytes).ok());
  auto back = DecodeActivations(bytes, config::DType::kFloat32, 37, 768);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(*back, rows));
}

TEST(ActivationCodecTest, HalfPrecisionDtypesRoundLikeTensorTo) {
  at::Tensor rows = at::randn({64, 48}) * 10;
  for (config::DType dtype : {config::DType::kBFloat16, config::DType::kFloat16}) {
    std::string bytes;
    ASSERT_TRUE(EncodeActivations(rows, dtype, &bytes).ok());
    EXPECT_EQ(bytes.size(), 64u * 48u * 2u);
    auto back = DecodeActivations(bytes, dtype, 64, 48);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(*back, rows.to(ScalarTypeOf(dtype)).to(at::kFloat)))
        << config::ToString(dtype);
  }
}

TEST(ActivationCodecTest, DecodedTensorOwnsItsMemory) {
  at::Tensor rows = at::randn({4, 8});
  std::string bytes;
  ASSERT_TRUE(EncodeActivations(rows, config::DType::kFloat32, &bytes).ok());
  auto back = DecodeActivations(bytes, config::DType::kFloat32, 4, 8);
  ASSERT_TRUE(back.ok());
  std::memset(bytes.data(), 0, bytes.size());
  EXPECT_TRUE(at::equal(*back, rows));
}

TEST(ActivationCodecTest, RejectsABatchWhoseSizeDoesNotMatchItsShape) {
  std::string bytes(100, '\0');
  auto decoded = DecodeActivations(bytes, config::DType::kFloat32, 5, 6);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find("120 bytes, got 100"), std::string::npos)
      << decoded.status();
}

TEST(ActivationCodecTest, RejectsAnythingButAMatrixOfFloats) {
  std::string bytes;
  EXPECT_FALSE(EncodeActivations(at::zeros({3}), config::DType::kFloat32, &bytes).ok());
  EXPECT_FALSE(
      EncodeActivations(at::zeros({3, 3}, at::kLong), config::DType::kFloat32, &bytes).ok());
}

}  // namespace
}  // namespace sae::wire
