// The Prometheus text exposition format, version 0.0.4, as prometheus-cpp's TextSerializer writes
// it: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
#ifndef SAE_CORE_METRICS_TEXT_FORMAT_H_
#define SAE_CORE_METRICS_TEXT_FORMAT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/metrics/snapshot.h"

namespace sae::metrics {

// The Content-Type of a /metrics response in this format.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// `text` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD: one invalid
// byte would make Prometheus reject the whole scrape, and prometheus-cpp passes bytes through.
std::string ReplaceInvalidUtf8(absl::string_view text);

// A # HELP text with backslash and newline escaped (\\ and \n) and invalid UTF-8 replaced, ready
// for prometheus-cpp, which writes help verbatim (a raw newline would end the line early). Label
// values need only ReplaceInvalidUtf8: TextSerializer escapes them itself.
std::string EscapeHelp(absl::string_view help);

// prometheus::TextSerializer's exposition of `families`, in the given order (Registry::Collect
// sorts them by name): for each, # HELP and # TYPE lines, then one line per child, or for a
// histogram child its _count, _sum and cumulative _bucket lines (ending with le="+Inf"). Values
// print with 16 significant digits ("0.1", "1712345678", "2.5e-07"), as "+Inf", "-Inf" and "Nan".
std::string FormatText(const std::vector<FamilySnapshot>& families);

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_TEXT_FORMAT_H_
