#include "core/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace sae::tokenizer {
namespace {

// Stands in for an ill-formed byte while the pattern runs. Like U+FFFD it is neither a letter, a
// number, white space nor the apostrophe of a contraction, so it splits as U+FFFD would; being
// one byte, it keeps every offset of the original text.
constexpr char kInvalidByteStandIn = '?';

// Length of the well-formed UTF-8 sequence at the start of `s` (Unicode table 3-7), or 0 when
// the first byte does not begin one.
size_t WellFormedSequenceLength(const unsigned char* s, size_t available) {
  unsigned char lead = s[0];
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (available < length) return 0;
  if (s[1] < second_min || s[1] > second_max) return 0;
  for (size_t i = 2; i < length; ++i) {
    if ((s[i] & 0xC0) != 0x80) return 0;
  }
  return length;
}

// `text` with every byte that is not part of well-formed UTF-8 replaced by kInvalidByteStandIn.
std::string ReplaceIllFormedBytes(absl::string_view text) {
  std::string out(text);
  auto* s = reinterpret_cast<unsigned char*>(out.data());
  size_t i = 0;
  while (i < out.size()) {
    size_t length = WellFormedSequenceLength(s + i, out.size() - i);
    if (length == 0) {
      s[i] = kInvalidByteStandIn;
      length = 1;
    }
    i += length;
  }
  return out;
}

// Match data for patterns without capture groups, one per thread, so Split allocates nothing.
pcre2_match_data* ThreadMatchData() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

}  // namespace

bool IsValidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII runs, the common case, eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, s + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    size_t length = WellFormedSequenceLength(s + i, n - i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create() {
  std::string pattern = absl::StrReplaceAll(
      kGpt2Pattern, {{R"(\s)", R"(\p{White_Space})"}, {R"(\S)", R"(\P{White_Space})"}});
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code,
                                   &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    return absl::InternalError(absl::StrCat("PCRE2 cannot compile GPT-2's pattern at offset ",
                                            error_offset, ": ",
                                            reinterpret_cast<const char*>(message)));
  }
  bool jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<PreTokenizer>(new PreTokenizer(code, jit));
}

PreTokenizer::~PreTokenizer() { pcre2_code_free(code_); }

void PreTokenizer::Split(absl::string_view text,
                         absl::FunctionRef<void(absl::string_view)> on_piece) const {
  if (IsValidUtf8(text)) {
    SplitValid(text, text, on_piece);
  } else {
    std::string stand_in = ReplaceIllFormedBytes(text);
    SplitValid(stand_in, text, on_piece);
  }
}

void PreTokenizer::SplitValid(absl::string_view subject, absl::string_view original,
                              absl::FunctionRef<void(absl::string_view)> on_piece) const {
  pcre2_match_data* match_data = ThreadMatchData();
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t size = subject.size();
  size_t offset = 0;
  while (offset < size) {
    int rc = -1;
    if (jit_) rc = pcre2_jit_match(code_, data, size, offset, 0, match_data, nullptr);
    // Without the JIT, or when its stack runs out, the interpreter takes over.
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      rc = pcre2_match(code_, data, size, offset, PCRE2_NO_UTF_CHECK, match_data, nullptr);
    }
    if (rc < 0) {
      // Every character matches one of the alternatives, so this cannot happen with GPT-2's
      // pattern; the bytes are kept all the same.
      on_piece(original.substr(offset));
      return;
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data);
    size_t start = ovector[0];
    size_t end = ovector[1];
    if (start > offset) on_piece(original.substr(offset, start - offset));
    if (end <= start) {
      // An empty match (impossible with this pattern) would loop forever: step one character.
      end = start + 1;
      while (end < size && (static_cast<unsigned char>(subject[end]) & 0xC0) == 0x80) ++end;
    }
    on_piece(original.substr(start, end - start));
    offset = end;
  }
}

}  // namespace sae::tokenizer
