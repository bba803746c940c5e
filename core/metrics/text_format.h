// The Prometheus text exposition format, version 0.0.4:
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
#ifndef SAE_CORE_METRICS_TEXT_FORMAT_H_
#define SAE_CORE_METRICS_TEXT_FORMAT_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/metrics/snapshot.h"

namespace sae::metrics {

// The Content-Type of a /metrics response in this format.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// A sample value or bucket bound as Prometheus writes it: "+Inf", "-Inf", "NaN"; integers below
// 2^53 in magnitude as plain integers ("1712345678", never "1.712345678e+09"); anything else in
// the shortest form that parses back to the same double ("0.1", "2.5e-07").
std::string FormatValue(double value);

// A # HELP text with backslash and newline escaped (\\ and \n). Invalid UTF-8 bytes become U+FFFD,
// since one invalid byte would make Prometheus reject the whole scrape.
std::string EscapeHelp(absl::string_view help);

// A label value with backslash, double quote and newline escaped (\\, \" and \n), and invalid
// UTF-8 bytes replaced by U+FFFD.
std::string EscapeLabelValue(absl::string_view value);

// The exposition of `families`, in the given order (Registry::Collect sorts them by name): for
// each, a # HELP and a # TYPE line, then one line per child, or for a histogram child its
// cumulative _bucket lines (ending with le="+Inf"), _sum and _count. A family without children
// writes only its HELP and TYPE lines. Every line ends in "\n".
std::string FormatText(const std::vector<FamilySnapshot>& families);

}  // namespace sae::metrics

#endif  // SAE_CORE_METRICS_TEXT_FORMAT_H_
