#include "core/metrics/text_format.h"

#include "prometheus/text_serializer.h"

namespace sae::metrics {
namespace {

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.

// Length of the well-formed UTF-8 sequence starting at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
size_t Utf8SequenceLength(absl::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  auto continuation = [&](size_t k, unsigned char low = 0x80, unsigned char high = 0xBF) {
    return k < text.size() && byte(k) >= low && byte(k) <= high;
  };
  unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continuation(i + 1) ? 2 : 0;
  if (lead == 0xE0) return continuation(i + 1, 0xA0) && continuation(i + 2) ? 3 : 0;
  if (lead == 0xED) return continuation(i + 1, 0x80, 0x9F) && continuation(i + 2) ? 3 : 0;
  if (lead >= 0xE1 && lead <= 0xEF) return continuation(i + 1) && continuation(i + 2) ? 3 : 0;
  if (lead == 0xF0) {
    return continuation(i + 1, 0x90) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  if (lead >= 0xF1 && lead <= 0xF3) {
    return continuation(i + 1) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  if (lead == 0xF4) {
    return continuation(i + 1, 0x80, 0x8F) && continuation(i + 2) && continuation(i + 3) ? 4 : 0;
  }
  return 0;
}

std::string Escape(absl::string_view text, bool escape) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      out += kReplacementCharacter;
      ++i;
      continue;
    }
    char c = text[i];
    if (escape && c == '\\') {
      out += "\\\\";
    } else if (escape && c == '\n') {
      out += "\\n";
    } else {
      out.append(text.data() + i, length);
    }
    i += length;
  }
  return out;
}

}  // namespace

std::string ReplaceInvalidUtf8(absl::string_view text) { return Escape(text, /*escape=*/false); }

std::string EscapeHelp(absl::string_view help) { return Escape(help, /*escape=*/true); }

std::string FormatText(const std::vector<FamilySnapshot>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace sae::metrics
