#include "core/data/jsonl_fields.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace sae::data {
namespace {

using Json = nlohmann::json;

std::string Where(const std::string& path, size_t line_number) {
  return absl::StrCat(path, ":", line_number, ": ");
}

absl::StatusOr<Json> ParseObject(std::string_view line, const std::string& path,
                                 size_t line_number) {
  Json value;
  try {
    value = Json::parse(line.begin(), line.end());
  } catch (const Json::exception& error) {  // parse_error, and out_of_range for a number
                                           // beyond a double's range (found by fuzzing)
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path, line_number), "malformed JSON (", error.what(), ")"));
  }
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path, line_number), "expected a JSON object, found ", value.type_name()));
  }
  return value;
}

}  // namespace

bool IsBlankLine(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

absl::StatusOr<JsonlFields> InspectJsonlLine(std::string_view line, const std::string& path,
                                             size_t line_number) {
  absl::StatusOr<Json> object = ParseObject(line, path, line_number);
  if (!object.ok()) return object.status();
  JsonlFields fields;
  fields.has_text = object->contains("text");
  fields.has_tokens = object->contains("tokens") || object->contains("input_ids");
  return fields;
}

absl::StatusOr<std::string> ParseJsonlText(std::string_view line, const std::string& path,
                                           size_t line_number) {
  absl::StatusOr<Json> object = ParseObject(line, path, line_number);
  if (!object.ok()) return object.status();
  auto text = object->find("text");
  if (text == object->end()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(path, line_number), "no \"text\" field"));
  }
  if (!text->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(path, line_number), "\"text\" is a ",
                                                   text->type_name(), ", not a string"));
  }
  return text->get<std::string>();
}

absl::StatusOr<std::vector<int32_t>> ParseJsonlTokens(std::string_view line,
                                                      const std::string& path, size_t line_number,
                                                      int32_t vocab_size) {
  absl::StatusOr<Json> object = ParseObject(line, path, line_number);
  if (!object.ok()) return object.status();
  const char* name = "tokens";
  auto array = object->find(name);
  if (array == object->end()) {
    name = "input_ids";
    array = object->find(name);
  }
  if (array == object->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(path, line_number), "no \"tokens\" or \"input_ids\" field"));
  }
  if (!array->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(Where(path, line_number), "\"", name, "\" is a ",
                                                   array->type_name(),
                                                   ", not an array of token ids"));
  }
  std::vector<int32_t> tokens;
  tokens.reserve(array->size());
  for (size_t i = 0; i < array->size(); ++i) {
    const Json& element = (*array)[i];
    if (!element.is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(Where(path, line_number), "\"", name, "\"[", i,
                                                     "] is ", element.dump(),
                                                     ", not an integer token id"));
    }
    int64_t id = element.get<int64_t>();
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(Where(path, line_number), "token id ", id, " at \"", name, "\"[", i,
                       "] lies outside the vocabulary [0, ", vocab_size, ")"));
    }
    tokens.push_back(static_cast<int32_t>(id));
  }
  return tokens;
}

}  // namespace sae::data
