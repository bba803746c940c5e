#include "core/io/tensor_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace sae::io {
namespace {

TEST(TensorIoTest, SavesAndLoadsEveryLibTorchTypeExactly) {
  const support::TempDir temp("tensor_io_test");
  const std::string path = temp.File("tensors.safetensors");
  at::manual_seed(3);
  NamedTensors tensors = {
      {"f32", at::randn({3, 4})},
      {"f64", at::randn({2}, at::kDouble)},
      {"f16", at::randn({5, 2}).to(at::kHalf)},
      {"bf16", at::randn({2, 2, 2}).to(at::kBFloat16)},
      {"i64", at::randint(-100, 100, {7}, at::kLong)},
      {"i32", at::randint(-100, 100, {7}, at::kInt)},
      {"u8", at::randint(0, 255, {9}, at::kByte)},
      {"bool", at::randint(0, 2, {4}, at::kLong).to(at::kBool)},
      {"transposed", at::randn({3, 5}).t()},
  };
  ASSERT_TRUE(SaveTensors(path, tensors, {{"format", "pt"}}).ok());
  auto loaded = LoadTensors(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (const auto& [name, t] : tensors) {
    const at::Tensor& back = loaded->at(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(back.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(back, t)) << name;
  }
}

TEST(TensorIoTest, UnsignedSixteenBitTokensWidenToInt32) {
  const support::TempDir temp("tensor_io_test");
  const std::string path = temp.File("u16.safetensors");
  uint16_t tokens[3] = {50256, 1, 65535};
  SafetensorsWriter writer;
  ASSERT_TRUE(writer
                  .Add("tokens", DType::kU16, {3},
                       absl::Span<const uint8_t>(reinterpret_cast<uint8_t*>(tokens), 6))
                  .ok());
  ASSERT_TRUE(writer.Write(path).ok());
  auto loaded = LoadTensors(path);
  ASSERT_TRUE(loaded.ok());
  at::Tensor t = loaded->at("tokens");
  EXPECT_EQ(t.scalar_type(), at::kInt);
  EXPECT_EQ(t[0].item<int>(), 50256);
  EXPECT_EQ(t[2].item<int>(), 65535);
}

}  // namespace
}  // namespace sae::io
