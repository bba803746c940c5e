#include "core/metrics/text_format.h"

#include <charconv>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"

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

std::string Escape(absl::string_view text, bool escape_quote) {
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
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out.append(text.data() + i, length);
    }
    i += length;
  }
  return out;
}

// Appends `{name="value",...}` (with `le` last when given), or nothing when there are no labels.
// A label whose value is empty is left out: Prometheus reads an empty label as an absent one
// (e.g. the `sae` label of a run of one SAE, core/training/training_metrics.h).
void AppendLabels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                  const std::string* le, std::string* out) {
  bool any = false;
  for (const std::string& value : values) any = any || !value.empty();
  if (!any && le == nullptr) return;
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (values[i].empty()) continue;
    if (!first) out->push_back(',');
    first = false;
    absl::StrAppend(out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (le != nullptr) absl::StrAppend(out, first ? "" : ",", "le=\"", *le, "\"");
  out->push_back('}');
}

void AppendSample(absl::string_view name, const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, const std::string* le,
                  absl::string_view value, std::string* out) {
  out->append(name.data(), name.size());
  AppendLabels(label_names, label_values, le, out);
  absl::StrAppend(out, " ", value, "\n");
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  std::to_chars_result result;
  constexpr double kTwoToThe53 = 9007199254740992.0;
  if (value == std::trunc(value) && std::fabs(value) < kTwoToThe53) {
    result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed);
  } else {
    result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  }
  return std::string(buffer, result.ptr);
}

std::string EscapeHelp(absl::string_view help) { return Escape(help, /*escape_quote=*/false); }

std::string EscapeLabelValue(absl::string_view value) {
  return Escape(value, /*escape_quote=*/true);
}

std::string FormatText(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name, " ", MetricTypeName(family.type), "\n");
    for (const ChildSnapshot& child : family.children) {
      if (family.type != MetricType::kHistogram) {
        AppendSample(family.name, family.label_names, child.label_values, nullptr,
                     FormatValue(child.value), &out);
        continue;
      }
      const HistogramValue& histogram = child.histogram;
      std::string bucket_name = absl::StrCat(family.name, "_bucket");
      for (size_t i = 0; i <= family.bucket_bounds.size(); ++i) {
        std::string le =
            i < family.bucket_bounds.size() ? FormatValue(family.bucket_bounds[i]) : "+Inf";
        AppendSample(bucket_name, family.label_names, child.label_values, &le,
                     absl::StrCat(histogram.cumulative_counts[i]), &out);
      }
      AppendSample(absl::StrCat(family.name, "_sum"), family.label_names, child.label_values,
                   nullptr, FormatValue(histogram.sum), &out);
      AppendSample(absl::StrCat(family.name, "_count"), family.label_names, child.label_values,
                   nullptr, absl::StrCat(histogram.count), &out);
    }
  }
  return out;
}

}  // namespace sae::metrics
