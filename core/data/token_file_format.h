// The pre-tokenised binary formats a dataset may be stored in, and writers for them.
//
//   nanoGPT .bin  raw little-endian uint16 ids, no header (nanoGPT's prepare.py).
//   llm.c .bin    a header of 256 little-endian int32 (magic 20240520, version, token count,
//                 the rest zero), then the ids: uint16 for version 1 (GPT-2), uint32 for
//                 version 2 (LLaMA 3). A nanoGPT file for GPT-2 can never start with the magic:
//                 its first id would be 0xD548 = 54600, beyond GPT-2's 50257 ids.
//   .npy          NumPy's format, versions 1, 2 and 3; little-endian uint16, int32 or uint32,
//                 C order; shape (n,) is a token stream, shape (rows, columns) is pre-tokenised
//                 rows.
#ifndef SAE_CORE_DATA_TOKEN_FILE_FORMAT_H_
#define SAE_CORE_DATA_TOKEN_FILE_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sae::data {

inline constexpr int32_t kLlmcMagic = 20240520;
inline constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);

// Where the ids of a token file lie and how they are stored.
struct TokenFileLayout {
  size_t data_offset = 0;   // bytes before the first id
  int width = 2;            // bytes per id: 2 or 4
  bool is_signed = false;   // int32 ids (negative values are errors)
  uint64_t count = 0;       // ids in the file
  uint64_t row_length = 0;  // ids per row of a 2-D .npy; 0 for a stream
  std::string description;  // for messages, e.g. "llm.c .bin v1" or ".npy <u2 (1000,)"
};

// The layout of a .bin file of `bytes`: llm.c when it starts with the llm.c magic, nanoGPT
// otherwise. InvalidArgument naming `path` for an odd size, an unknown llm.c version, or a
// token count that disagrees with the file size.
absl::StatusOr<TokenFileLayout> ParseBinLayout(const std::string& path, std::string_view bytes);

// The layout of a .npy file of `bytes`. InvalidArgument naming `path` for a bad magic, an
// unsupported version, dtype ("descr"), Fortran order, rank other than 1 or 2, or a data size
// that disagrees with the shape.
absl::StatusOr<TokenFileLayout> ParseNpyLayout(const std::string& path, std::string_view bytes);

// File contents in each format, for tests, benchmarks and tools that pre-tokenise.
// InvalidArgument when an id does not fit the element type (uint16: 0..65535).
absl::StatusOr<std::string> EncodeNanoGptBin(absl::Span<const int32_t> tokens);
absl::StatusOr<std::string> EncodeLlmcBin(absl::Span<const int32_t> tokens);

enum class NpyElement { kUint16, kInt32 };
// `row_length` 0 writes shape (n,); otherwise shape (n / row_length, row_length), which
// requires n to be a multiple of row_length. `version` is 1 or 2.
absl::StatusOr<std::string> EncodeNpy(absl::Span<const int32_t> tokens, NpyElement element,
                                      int version = 1, uint64_t row_length = 0);

}  // namespace sae::data

#endif  // SAE_CORE_DATA_TOKEN_FILE_FORMAT_H_
