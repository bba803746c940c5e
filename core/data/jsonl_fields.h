// Reading one line of a JSONL dataset (internal to core/data).
#ifndef SAE_CORE_DATA_JSONL_FIELDS_H_
#define SAE_CORE_DATA_JSONL_FIELDS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sae::data {

// Whether `line` holds only ASCII whitespace (a blank JSONL line, which holds no document).
bool IsBlankLine(std::string_view line);

// Which document fields a JSON object carries.
struct JsonlFields {
  bool has_text = false;    // "text": a string
  bool has_tokens = false;  // "tokens" or "input_ids"
};

// The fields of the JSON object on `line`. InvalidArgument "path:line_number: ..." for malformed
// JSON or a value that is not an object.
absl::StatusOr<JsonlFields> InspectJsonlLine(std::string_view line, const std::string& path,
                                             size_t line_number);

// The "text" string of `line`. InvalidArgument naming path and line when it is malformed or the
// field is missing or not a string.
absl::StatusOr<std::string> ParseJsonlText(std::string_view line, const std::string& path,
                                           size_t line_number);

// The ids of the "tokens" (or else "input_ids") array of `line`. InvalidArgument naming path and
// line when it is malformed, the field is missing, or an element is not an integer in
// [0, vocab_size).
absl::StatusOr<std::vector<int32_t>> ParseJsonlTokens(std::string_view line,
                                                      const std::string& path, size_t line_number,
                                                      int32_t vocab_size);

}  // namespace sae::data

#endif  // SAE_CORE_DATA_JSONL_FIELDS_H_
