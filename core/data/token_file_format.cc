#include "core/data/token_file_format.h"

#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace sae::data {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicSize = 6;

int32_t ReadInt32(std::string_view bytes, size_t offset) {
  int32_t value;
  std::memcpy(&value, bytes.data() + offset, sizeof(value));
  return value;
}

void AppendLittleEndian(uint64_t value, int width, std::string* out) {
  for (int i = 0; i < width; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

absl::Status AppendUint16(absl::Span<const int32_t> tokens, std::string* out) {
  out->reserve(out->size() + 2 * tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] > 0xffff) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", tokens[i], " at index ", i, " does not fit in uint16"));
    }
    AppendLittleEndian(static_cast<uint64_t>(tokens[i]), 2, out);
  }
  return absl::OkStatus();
}

// The value of `key` in NumPy's header dict, e.g. "'<u2'" for 'descr', up to the next top-level
// comma or closing brace.
absl::string_view DictValue(absl::string_view header, absl::string_view key) {
  std::string quoted = absl::StrCat("'", key, "'");
  size_t at = header.find(quoted);
  if (at == absl::string_view::npos) return {};
  size_t colon = header.find(':', at + quoted.size());
  if (colon == absl::string_view::npos) return {};
  size_t begin = colon + 1;
  int depth = 0;
  size_t end = begin;
  for (; end < header.size(); ++end) {
    char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return absl::StripAsciiWhitespace(header.substr(begin, end - begin));
}

}  // namespace

absl::StatusOr<TokenFileLayout> ParseBinLayout(const std::string& path, std::string_view bytes) {
  TokenFileLayout layout;
  if (bytes.size() >= kLlmcHeaderBytes && ReadInt32(bytes, 0) == kLlmcMagic) {
    int32_t version = ReadInt32(bytes, 4);
    int32_t count = ReadInt32(bytes, 8);
    if (version != 1 && version != 2) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": llm.c .bin header has version ",
                                                     version, "; known versions are 1 and 2"));
    }
    layout.width = version == 1 ? 2 : 4;
    layout.data_offset = kLlmcHeaderBytes;
    if (count < 0 ||
        kLlmcHeaderBytes + static_cast<uint64_t>(count) * layout.width != bytes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": llm.c .bin header announces ", count, " tokens but the file holds ",
                       (bytes.size() - kLlmcHeaderBytes) / layout.width, " (", bytes.size(),
                       " bytes); the file is truncated or not an llm.c token file"));
    }
    layout.count = static_cast<uint64_t>(count);
    layout.description = absl::StrCat("llm.c .bin v", version);
    return layout;
  }
  if (bytes.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a nanoGPT .bin holds uint16 ids, but the file has an odd size (",
                     bytes.size(), " bytes)"));
  }
  layout.count = bytes.size() / 2;
  layout.description = "nanoGPT .bin";
  return layout;
}

absl::StatusOr<TokenFileLayout> ParseNpyLayout(const std::string& path, std::string_view bytes) {
  auto invalid = [&path](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parts...));
  };
  if (bytes.size() < 10 || bytes.substr(0, kNpyMagicSize) != std::string_view(kNpyMagic)) {
    return invalid("not a .npy file (no \\x93NUMPY magic)");
  }
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_length;
  size_t header_begin;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) |
                    (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_begin = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return invalid(".npy header is truncated");
    uint32_t length;
    std::memcpy(&length, bytes.data() + 8, sizeof(length));
    header_length = length;
    header_begin = 12;
  } else {
    return invalid(".npy version ", major, " is not supported (1, 2 and 3 are)");
  }
  if (header_begin + header_length > bytes.size()) return invalid(".npy header is truncated");
  absl::string_view header(bytes.data() + header_begin, header_length);

  TokenFileLayout layout;
  absl::string_view descr = DictValue(header, "descr");
  if (descr == "'<u2'" || descr == "'|u2'") {
    layout.width = 2;
  } else if (descr == "'<i4'") {
    layout.width = 4;
    layout.is_signed = true;
  } else if (descr == "'<u4'") {
    layout.width = 4;
  } else {
    return invalid(".npy dtype ", descr.empty() ? "(missing)" : std::string(descr),
                   " is not supported; store token ids as uint16 ('<u2') or int32 ('<i4'), e.g. "
                   "np.save(path, ids.astype(np.uint16))");
  }
  if (DictValue(header, "fortran_order") != "False") {
    return invalid(".npy array is in Fortran order; save it in C order");
  }
  absl::string_view shape = DictValue(header, "shape");
  if (!absl::ConsumePrefix(&shape, "(") || !absl::ConsumeSuffix(&shape, ")")) {
    return invalid(".npy header has no shape");
  }
  std::vector<uint64_t> dims;
  for (absl::string_view part : absl::StrSplit(shape, ',', absl::SkipWhitespace())) {
    uint64_t dim;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &dim)) {
      return invalid(".npy shape (", shape, ") is malformed");
    }
    dims.push_back(dim);
  }
  if (dims.size() != 1 && dims.size() != 2) {
    return invalid(".npy array has ", dims.size(),
                   " dimensions; token files are 1-D (a stream) or 2-D (rows)");
  }
  layout.count = dims.size() == 1 ? dims[0] : dims[0] * dims[1];
  layout.row_length = dims.size() == 2 ? dims[1] : 0;
  layout.data_offset = header_begin + header_length;
  if (layout.data_offset + layout.count * layout.width != bytes.size()) {
    return invalid(".npy shape (", shape, ") needs ", layout.count * layout.width,
                   " bytes of data but the file holds ", bytes.size() - layout.data_offset);
  }
  layout.description = absl::StrCat(".npy ", absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"),
                                    " (", shape, ")");
  return layout;
}

absl::StatusOr<std::string> EncodeNanoGptBin(absl::Span<const int32_t> tokens) {
  std::string out;
  absl::Status status = AppendUint16(tokens, &out);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> EncodeLlmcBin(absl::Span<const int32_t> tokens) {
  if (tokens.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError("an llm.c .bin holds at most 2^31-1 tokens");
  }
  std::string out(kLlmcHeaderBytes, '\0');
  int32_t header[3] = {kLlmcMagic, 1, static_cast<int32_t>(tokens.size())};
  std::memcpy(out.data(), header, sizeof(header));
  absl::Status status = AppendUint16(tokens, &out);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> EncodeNpy(absl::Span<const int32_t> tokens, NpyElement element,
                                      int version, uint64_t row_length) {
  if (version != 1 && version != 2) {
    return absl::InvalidArgumentError(absl::StrCat(".npy version ", version, " cannot be written"));
  }
  std::string shape;
  if (row_length == 0) {
    shape = absl::StrCat("(", tokens.size(), ",)");
  } else {
    if (tokens.size() % row_length != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(tokens.size(), " tokens do not make whole rows of ", row_length));
    }
    shape = absl::StrCat("(", tokens.size() / row_length, ", ", row_length, ")");
  }
  std::string header = absl::StrCat("{'descr': '", element == NpyElement::kUint16 ? "<u2" : "<i4",
                                    "', 'fortran_order': False, 'shape': ", shape, ", }");
  size_t prefix = version == 1 ? 10 : 12;
  // NumPy pads with spaces and a final newline so that the data starts at a multiple of 64.
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');
  std::string out(kNpyMagic, kNpyMagicSize);
  out.push_back(static_cast<char>(version));
  out.push_back('\0');
  AppendLittleEndian(header.size(), version == 1 ? 2 : 4, &out);
  out += header;
  if (element == NpyElement::kUint16) {
    absl::Status status = AppendUint16(tokens, &out);
    if (!status.ok()) return status;
  } else {
    for (int32_t token : tokens) AppendLittleEndian(static_cast<uint32_t>(token), 4, &out);
  }
  return out;
}

}  // namespace sae::data
