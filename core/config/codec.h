// Internal to core/config: reading and writing one YAML scalar per member type of RunConfig.
//
// Codec<T> for every member type T has kType (the schema's KeyType), Allowed() (the values in
// words), Parse(value, nullable, &out) (InvalidArgument with a message that does not name the
// key), Format(value) (YAML text that Parse reads back exactly) and Json(value).
#ifndef SAE_CORE_CONFIG_CODEC_H_
#define SAE_CORE_CONFIG_CODEC_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/config/field.h"
#include "core/config/run_config.h"
#include "core/config/schema.h"
#include "nlohmann/json.hpp"

namespace sae::config::internal {

// `value` as run.yaml writes numbers: the shortest text that reads back exactly, fixed for
// exponents -5 to 15 ("0.0003", "0.00008", "2000000"), else scientific ("1e-8"), as Python's
// repr chooses.
std::string FormatDouble(double value);

// `text` plain when YAML cannot mistake it for another type and it needs no escaping
// (blocks.2.hook_resid_pre, /data/gpt2, cuda:1), else double-quoted with escapes.
std::string FormatString(const std::string& text);

// Decimal or exponent notation with optional underscores between digits; no hex, inf or nan.
std::optional<double> ReadDouble(absl::string_view text);

// An integer, also written with underscores (2_000_000) or in exponent notation when exact
// (2e6, 3.0e8, up to 2^53).
std::optional<int64_t> ReadInteger(absl::string_view text);

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). JSON, proto3
// strings and YAML are UTF-8, so a string key that is not (a byte-garbled dataset_path) would
// break cfg.json and the controller's records later; ParseRunConfig refuses it up front.
// `bad_offset` receives the offset of the first byte that is not.
bool IsUtf8(absl::string_view text, size_t* bad_offset);

// "expected a number, got 'abc'"; `nullable` adds "or null" to what is expected.
absl::Status TypeError(absl::string_view expected, bool nullable, const ScalarValue& value);

template <typename T>
struct Codec;

template <>
struct Codec<std::string> {
  static constexpr KeyType kType = KeyType::kString;
  static std::string Allowed() { return "string"; }
  static absl::Status Parse(const ScalarValue& value, bool nullable, std::string* out) {
    if (value.is_null) return TypeError("a string", nullable, value);
    size_t bad = 0;
    if (!IsUtf8(value.text, &bad)) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected UTF-8 text, got a byte that is not UTF-8 at offset ", bad,
                       " of the value (save run.yaml as UTF-8)"));
    }
    *out = value.text;
    return absl::OkStatus();
  }
  static std::string Format(const std::string& text) { return FormatString(text); }
  static nlohmann::json Json(const std::string& text) { return text; }
};

template <>
struct Codec<int64_t> {
  static constexpr KeyType kType = KeyType::kInteger;
  static std::string Allowed() { return "integer"; }
  static absl::Status Parse(const ScalarValue& value, bool nullable, int64_t* out) {
    std::optional<int64_t> number;
    if (!value.is_null && !value.is_quoted) number = ReadInteger(value.text);
    if (!number) {
      return TypeError("an integer (for example 4096, 2_000_000 or 2e6)", nullable, value);
    }
    *out = *number;
    return absl::OkStatus();
  }
  static std::string Format(int64_t number) { return absl::StrCat(number); }
  static nlohmann::json Json(int64_t number) { return number; }
};

template <>
struct Codec<double> {
  static constexpr KeyType kType = KeyType::kNumber;
  static std::string Allowed() { return "number"; }
  static absl::Status Parse(const ScalarValue& value, bool nullable, double* out) {
    std::optional<double> number;
    if (!value.is_null && !value.is_quoted) number = ReadDouble(value.text);
    if (!number) return TypeError("a number", nullable, value);
    *out = *number;
    return absl::OkStatus();
  }
  static std::string Format(double number) { return FormatDouble(number); }
  static nlohmann::json Json(double number) { return number; }
};

template <>
struct Codec<bool> {
  static constexpr KeyType kType = KeyType::kBoolean;
  static std::string Allowed() { return "true or false"; }
  static absl::Status Parse(const ScalarValue& value, bool nullable, bool* out) {
    if (!value.is_null && !value.is_quoted) {
      // YAML 1.2 core schema spellings.
      if (value.text == "true" || value.text == "True" || value.text == "TRUE") {
        *out = true;
        return absl::OkStatus();
      }
      if (value.text == "false" || value.text == "False" || value.text == "FALSE") {
        *out = false;
        return absl::OkStatus();
      }
    }
    return TypeError("true or false", nullable, value);
  }
  static std::string Format(bool flag) { return flag ? "true" : "false"; }
  static nlohmann::json Json(bool flag) { return flag; }
};

template <typename E>
struct EnumCodec {
  static constexpr KeyType kType = KeyType::kChoice;
  static std::string Allowed() { return absl::StrJoin(ChoiceNames<E>(), ", "); }
  static absl::Status Parse(const ScalarValue& value, bool nullable, E* out) {
    if (!value.is_null) {
      // Case-insensitive; the seed writes dtypes as torch.float32.
      absl::StatusOr<E> parsed = ParseChoice<E>(value.text, "");
      if (parsed.ok()) {
        *out = *parsed;
        return absl::OkStatus();
      }
    }
    return TypeError(absl::StrCat("one of ", absl::StrJoin(ChoiceNames<E>(), ", ")), nullable,
                     value);
  }
  static std::string Format(E value) { return std::string(ToString(value)); }
  static nlohmann::json Json(E value) { return std::string(ToString(value)); }
};
template <>
struct Codec<Architecture> : EnumCodec<Architecture> {};
template <>
struct Codec<JumpReLUSparsityLoss> : EnumCodec<JumpReLUSparsityLoss> {};
template <>
struct Codec<NormalizeActivations> : EnumCodec<NormalizeActivations> {};
template <>
struct Codec<LrScheduler> : EnumCodec<LrScheduler> {};
template <>
struct Codec<BDecInitMethod> : EnumCodec<BDecInitMethod> {};
template <>
struct Codec<FeatureSamplingMethod> : EnumCodec<FeatureSamplingMethod> {};
template <>
struct Codec<Processing> : EnumCodec<Processing> {};
template <>
struct Codec<DType> : EnumCodec<DType> {};

// A list of integers. run.yaml writes a YAML sequence ([64, 256]); the parser hands its items
// over as one scalar "64, 256" (brackets optional), which is also how --set may write it.
template <>
struct Codec<std::vector<int64_t>> {
  static constexpr KeyType kType = KeyType::kIntegerList;
  static std::string Allowed() { return "list of integers"; }
  static absl::Status Parse(const ScalarValue& value, bool nullable, std::vector<int64_t>* out) {
    absl::string_view text = value.text;
    if (!text.empty() && text.front() == '[' && text.back() == ']') {
      text = text.substr(1, text.size() - 2);
    }
    std::vector<int64_t> items;
    for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
      std::optional<int64_t> number = ReadInteger(absl::StripAsciiWhitespace(item));
      if (!number || value.is_null) {
        return TypeError("a list of integers (for example [64, 256])", nullable, value);
      }
      items.push_back(*number);
    }
    *out = std::move(items);
    return absl::OkStatus();
  }
  static std::string Format(const std::vector<int64_t>& items) {
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  static nlohmann::json Json(const std::vector<int64_t>& items) { return items; }
};

// Optional members: null is std::nullopt; anything else is the inner type.
template <typename T>
struct Codec<std::optional<T>> {
  static absl::Status Parse(const ScalarValue& value, bool nullable, std::optional<T>* out) {
    if (value.is_null) {
      out->reset();
      return absl::OkStatus();
    }
    T inner{};
    absl::Status status = Codec<T>::Parse(value, /*nullable=*/true, &inner);
    if (!status.ok()) return status;
    *out = std::move(inner);
    return absl::OkStatus();
  }
  static std::string Format(const std::optional<T>& value) {
    return value ? Codec<T>::Format(*value) : "null";
  }
  static nlohmann::json Json(const std::optional<T>& value) {
    return value ? Codec<T>::Json(*value) : nlohmann::json(nullptr);
  }
};

template <typename T>
struct Unwrapped {
  using Type = T;
  static constexpr bool kNullable = false;
};
template <typename T>
struct Unwrapped<std::optional<T>> {
  using Type = T;
  static constexpr bool kNullable = true;
};

}  // namespace sae::config::internal

#endif  // SAE_CORE_CONFIG_CODEC_H_
