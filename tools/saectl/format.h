// Human-readable numbers, times and tables, and JSON / YAML renderings, for saectl's output.
#ifndef SAE_TOOLS_SAECTL_FORMAT_H_
#define SAE_TOOLS_SAECTL_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace sae::saectl {

// 950, 12.3k, 3.69M, 1.20G.
std::string HumanCount(double n);
// 512 B, 1.5 KiB, 12.0 MiB, 1.25 GiB.
std::string HumanBytes(int64_t bytes);
// How long ago, kubectl's AGE style: 45s, 12m, 5h, 3d. "-" for 0.
std::string HumanAge(int64_t unix_ms, absl::Time now);
// A duration: 45s, 12m03s, 2h05m. "?" when negative or not finite.
std::string HumanDuration(double seconds);
// "2026-11-28 18:40:02 UTC"; "-" for 0.
std::string FormatTime(int64_t unix_ms);

// Rows (the first is the header) as text: columns left-aligned, padded to their widest cell and
// separated by three spaces, as kubectl prints them. Every line ends with a newline.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// The message as a JSON value with the field names of the .proto (proto3's JSON mapping:
// 64-bit integers as strings, enums by name, bytes in base64).
nlohmann::json ProtoToJson(const google::protobuf::Message& message);

// JSON as block-style YAML (keys in the JSON's order).
std::string JsonToYaml(const nlohmann::json& value);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_FORMAT_H_
