#include "core/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "core/util/files.h"
#include "support/temp_dir.h"

namespace sae::io {
namespace {

using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // A file made of an arbitrary header and `data_bytes` zero bytes.
  std::string WriteRaw(const std::string& header, size_t data_bytes,
                       const std::string& name = "f.safetensors") {
    std::string bytes(8, '\0');
    uint64_t n = header.size();
    std::memcpy(bytes.data(), &n, 8);
    bytes += header;
    bytes.append(data_bytes, '\0');
    EXPECT_TRUE(WriteFileAtomically(Path(name), bytes).ok());
    return Path(name);
  }

  absl::Status OpenStatus(const std::string& header, size_t data_bytes) {
    return SafetensorsFile::Open(WriteRaw(header, data_bytes)).status();
  }

  const support::TempDir temp_{"safetensors_test"};
  const std::filesystem::path dir_ = temp_.path();
};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeWithMetadata) {
  const DType all[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                       DType::kI32, DType::kI16, DType::kI8,  DType::kU64,  DType::kU32,
                       DType::kU16, DType::kU8,  DType::kBool};
  std::mt19937 rng(7);
  SafetensorsWriter writer;
  std::map<std::string, std::string> expected_bytes;
  int i = 0;
  for (DType d : all) {
    std::vector<int64_t> shape = {3, 1 + i % 4};
    size_t n = static_cast<size_t>(shape[0] * shape[1]) * DTypeSize(d);
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(d == DType::kBool ? rng() % 2 : rng() % 256);
    std::string name = "t_" + std::string(DTypeName(d));
    ASSERT_TRUE(
        writer
            .Add(name, d, shape,
                 absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), n))
            .ok());
    expected_bytes[name] = bytes;
    ++i;
  }
  ASSERT_TRUE(writer
                  .Add("scalar", DType::kF32, {},
                       absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>("abcd"), 4))
                  .ok());
  ASSERT_TRUE(writer.Add("empty", DType::kF32, {0, 5}, {}).ok());
  writer.SetMetadata("format", "pt");
  writer.SetMetadata("note", "quote \" and newline \n");
  ASSERT_TRUE(writer.Write(Path("all.safetensors")).ok());

  auto file = SafetensorsFile::Open(Path("all.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  EXPECT_EQ((*file)->metadata().at("note"), "quote \" and newline \n");
  EXPECT_EQ((*file)->tensors().size(), expected_bytes.size() + 2);
  for (const auto& [name, bytes] : expected_bytes) {
    const TensorInfo* info = (*file)->Find(name);
    ASSERT_NE(info, nullptr) << name;
    auto data = (*file)->Data(*info);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(data.data()), data.size()), bytes) << name;
  }
  const TensorInfo* scalar = (*file)->Find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel(), 1);
  EXPECT_EQ((*file)->Find("empty")->numel(), 0);
}

TEST_F(SafetensorsTest, HeaderIsPaddedToEightBytes) {
  SafetensorsWriter writer;
  ASSERT_TRUE(writer
                  .Add("x", DType::kU8, {3},
                       absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>("abc"), 3))
                  .ok());
  std::string bytes = writer.Serialize();
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST_F(SafetensorsTest, WriterRejectsDuplicateNamesAndWrongSizes) {
  SafetensorsWriter writer;
  uint8_t four[4] = {};
  ASSERT_TRUE(writer.Add("a", DType::kF32, {1}, four).ok());
  EXPECT_THAT(std::string(writer.Add("a", DType::kF32, {1}, four).message()), HasSubstr("twice"));
  EXPECT_THAT(std::string(writer.Add("b", DType::kF32, {2}, four).message()),
              HasSubstr("needs 8 bytes, got 4"));
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open(Path("nope.safetensors"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("nope.safetensors"));
}

TEST_F(SafetensorsTest, FileShorterThanTheLengthFieldIsRejected) {
  ASSERT_TRUE(WriteFileAtomically(Path("short"), "abc").ok());
  auto status = SafetensorsFile::Open(Path("short")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("shorter than the 8-byte header length"));
}

TEST_F(SafetensorsTest, HeaderLengthBeyondTheFileIsRejected) {
  std::string bytes(8, '\0');
  uint64_t n = 1000;
  std::memcpy(bytes.data(), &n, 8);
  bytes += "{}";
  ASSERT_TRUE(WriteFileAtomically(Path("trunc"), bytes).ok());
  auto status = SafetensorsFile::Open(Path("trunc")).status();
  EXPECT_THAT(std::string(status.message()), HasSubstr("exceeds the file size"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("trunc"));
}

TEST_F(SafetensorsTest, HugeHeaderLengthIsRejected) {
  std::string bytes(8, '\0');
  uint64_t n = 1ull << 40;
  std::memcpy(bytes.data(), &n, 8);
  ASSERT_TRUE(WriteFileAtomically(Path("huge"), bytes).ok());
  EXPECT_THAT(std::string(SafetensorsFile::Open(Path("huge")).status().message()),
              HasSubstr("exceeds the 100 MiB limit"));
}

TEST_F(SafetensorsTest, InvalidJsonIsRejected) {
  EXPECT_THAT(std::string(OpenStatus("{\"a\": ", 0).message()), HasSubstr("not valid JSON"));
  EXPECT_THAT(std::string(OpenStatus("[1,2]", 0).message()), HasSubstr("does not start with '{'"));
}

TEST_F(SafetensorsTest, UnknownDtypeNamesTheTensor) {
  auto s = OpenStatus(R"({"w":{"dtype":"F13","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'w'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown dtype 'F13'"));
}

TEST_F(SafetensorsTest, MissingFieldsAreRejected) {
  EXPECT_THAT(std::string(OpenStatus(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4).message()),
              HasSubstr("\"dtype\""));
  EXPECT_THAT(std::string(OpenStatus(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4).message()),
              HasSubstr("\"shape\""));
  EXPECT_THAT(std::string(OpenStatus(R"({"w":{"dtype":"F32","shape":[1]}})", 4).message()),
              HasSubstr("data_offsets"));
  EXPECT_THAT(
      std::string(
          OpenStatus(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4).message()),
      HasSubstr("two non-negative integers"));
}

TEST_F(SafetensorsTest, NegativeOrNonIntegerShapeIsRejected) {
  EXPECT_THAT(
      std::string(
          OpenStatus(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4).message()),
      HasSubstr("not a non-negative integer"));
  EXPECT_THAT(
      std::string(
          OpenStatus(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4).message()),
      HasSubstr("not a non-negative integer"));
}

TEST_F(SafetensorsTest, ShapeThatDisagreesWithTheSpanIsRejected) {
  auto s = OpenStatus(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("shape [2,3] of F32 needs 24 bytes but data_offsets span 20"));
}

TEST_F(SafetensorsTest, OffsetsOutsideTheFileAreRejected) {
  auto s = OpenStatus(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
  EXPECT_THAT(std::string(s.message()), HasSubstr("reach past the end of the data section"));
}

TEST_F(SafetensorsTest, ReversedOffsetsAreRejected) {
  auto s = OpenStatus(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8);
  EXPECT_THAT(std::string(s.message()), HasSubstr("end before they begin"));
}

TEST_F(SafetensorsTest, OverlappingTensorsAreRejected) {
  auto s = OpenStatus(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                      12);
  EXPECT_THAT(std::string(s.message()), HasSubstr("overlap tensor 'a'"));
}

TEST_F(SafetensorsTest, HolesAndTrailingBytesAreRejected) {
  EXPECT_THAT(
      std::string(
          OpenStatus(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8).message()),
      HasSubstr("hole"));
  EXPECT_THAT(
      std::string(
          OpenStatus(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8).message()),
      HasSubstr("trailing bytes"));
}

TEST_F(SafetensorsTest, NonStringMetadataIsRejected) {
  EXPECT_THAT(std::string(OpenStatus(R"({"__metadata__":{"n":1}})", 0).message()),
              HasSubstr("__metadata__ value of 'n' is not a string"));
  EXPECT_THAT(std::string(OpenStatus(R"({"__metadata__":[1]})", 0).message()),
              HasSubstr("__metadata__ is not a JSON object"));
}

TEST_F(SafetensorsTest, RandomCorruptionNeverCrashes) {
  SafetensorsWriter writer;
  std::vector<float> data(64, 1.0f);
  auto span = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), 256);
  ASSERT_TRUE(writer.Add("a", DType::kF32, {8, 8}, span).ok());
  ASSERT_TRUE(writer.Add("b", DType::kF16, {4, 8}, span.subspan(0, 64)).ok());
  std::string good = writer.Serialize();
  std::mt19937 rng(1);
  int rejected = 0;
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t pos = rng() % std::min<size_t>(bytes.size(), 8 + 120);
      bytes[pos] = static_cast<char>(rng() % 256);
    }
    if (rng() % 5 == 0) bytes.resize(rng() % bytes.size());
    ASSERT_TRUE(WriteFileAtomically(Path("fuzz"), bytes).ok());
    auto file = SafetensorsFile::Open(Path("fuzz"));
    if (!file.ok()) {
      ++rejected;
      continue;
    }
    // Whatever is accepted must be internally consistent.
    for (const TensorInfo& t : (*file)->tensors()) {
      EXPECT_EQ((*file)->Data(t).size(), t.nbytes());
    }
  }
  EXPECT_GT(rejected, 100);
}

}  // namespace
}  // namespace sae::io
