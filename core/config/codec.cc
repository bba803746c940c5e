#include "core/config/codec.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sae::config::internal {
namespace {

// Removes underscores between digits ("2_000_000"). std::nullopt when an underscore is
// anywhere else.
std::optional<std::string> StripDigitSeparators(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '_') {
      out.push_back(text[i]);
      continue;
    }
    bool between_digits = i > 0 && i + 1 < text.size() && absl::ascii_isdigit(text[i - 1]) &&
                          absl::ascii_isdigit(text[i + 1]);
    if (!between_digits) return std::nullopt;
  }
  return out;
}

}  // namespace

std::string FormatDouble(double value) {
  std::array<char, 400> buffer;
  char* begin = buffer.data();
  char* end = std::to_chars(begin, begin + buffer.size(), value, std::chars_format::scientific).ptr;
  std::string scientific(begin, end);
  size_t e = scientific.find('e');
  int exponent = std::stoi(scientific.substr(e + 1));
  if (exponent >= -5 && exponent < 16) {
    end = std::to_chars(begin, begin + buffer.size(), value, std::chars_format::fixed).ptr;
    return std::string(begin, end);
  }
  return absl::StrCat(scientific.substr(0, e), "e", exponent);
}

std::optional<double> ReadDouble(absl::string_view text) {
  std::optional<std::string> digits = StripDigitSeparators(text);
  if (!digits || digits->empty()) return std::nullopt;
  absl::string_view view = *digits;
  if (view.front() == '+') view.remove_prefix(1);
  double value = 0;
  auto [end, error] =
      std::from_chars(view.data(), view.data() + view.size(), value, std::chars_format::general);
  if (error != std::errc() || end != view.data() + view.size() || !std::isfinite(value)) {
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> ReadInteger(absl::string_view text) {
  std::optional<std::string> digits = StripDigitSeparators(text);
  if (!digits || digits->empty()) return std::nullopt;
  absl::string_view view = *digits;
  if (view.front() == '+') view.remove_prefix(1);
  int64_t value = 0;
  auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error == std::errc() && end == view.data() + view.size()) return value;
  // 2e6, 3.0e8: accepted when the number is an integer a double represents exactly.
  std::optional<double> real = ReadDouble(text);
  constexpr double kExactLimit = 9007199254740992.0;  // 2^53
  if (!real || std::trunc(*real) != *real || std::fabs(*real) > kExactLimit) return std::nullopt;
  return static_cast<int64_t>(*real);
}

absl::Status TypeError(absl::string_view expected, bool nullable, const ScalarValue& value) {
  std::string what = absl::StrCat("expected ", expected, nullable ? " or null" : "");
  if (value.is_null) return absl::InvalidArgumentError(absl::StrCat(what, ", got null"));
  if (value.is_quoted) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ", got the string '", value.text, "' (write it without quotes)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(what, ", got '", value.text, "'"));
}

bool IsUtf8(absl::string_view text, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) {
      length = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // no overlong forms
      if (c == 0xED) high = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // no overlong forms
      if (c == 0xF4) high = 0x8F;  // nothing above U+10FFFF
    } else {
      *bad_offset = i;
      return false;
    }
    if (i + length > n) {
      *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < length; ++k) {
      const unsigned char next = p[i + k];
      if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) {
        *bad_offset = i;
        return false;
      }
    }
    i += length;
  }
  return true;
}

std::string FormatString(const std::string& text) {
  bool plain = !text.empty() && (absl::ascii_isalpha(text.front()) || text.front() == '/') &&
               text.back() != ':';
  for (char c : text) {
    plain = plain &&
            (absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-' || c == ':');
  }
  std::string lower = absl::AsciiStrToLower(text);
  for (absl::string_view reserved : {"null", "true", "false", "yes", "no", "on", "off"}) {
    plain = plain && lower != reserved;
  }
  if (plain) return text;
  std::string quoted = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\t':
        quoted += "\\t";
        break;
      case '\r':
        quoted += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          constexpr char kHex[] = "0123456789abcdef";
          quoted += absl::StrCat("\\x", std::string(1, kHex[c >> 4]), std::string(1, kHex[c & 15]));
        } else {
          quoted.push_back(static_cast<char>(c));
        }
    }
  }
  return quoted + "\"";
}

}  // namespace sae::config::internal
