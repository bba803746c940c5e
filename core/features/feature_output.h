// Writes a FeatureReport as files (docs/features.md): features.jsonl (one JSON record per
// feature), summary.json, and a static HTML dashboard that opens from disk (index.html, one
// feature per feature.html#N, data loaded lazily in chunks as <script> files).
//
// Everything is written into a fresh folder beside `out_dir`, which then replaces `out_dir` by
// a rename: a failure leaves no half-written dashboard (and the previous one, if any, intact).
#ifndef SAE_CORE_FEATURES_FEATURE_OUTPUT_H_
#define SAE_CORE_FEATURES_FEATURE_OUTPUT_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "core/features/feature_pass.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "nlohmann/json.hpp"

namespace sae::features {

inline constexpr int kFormatVersion = 1;
inline constexpr int64_t kFeaturesPerChunk = 256;

// The JSON record of report.stats[i] (the features.jsonl line). `contexts` [N, T] are the pass's
// token ids; `tokenizer` may be null (then "tokens" holds "<id>" strings).
nlohmann::json FeatureRecord(const FeatureReport& report, size_t i, const at::Tensor& contexts,
                             const tokenizer::Gpt2Tokenizer* tokenizer);

// Whether `out_dir` may receive the output: missing, empty, or a previous output of saectl
// features (it holds summary.json with "format_version"), which the new one replaces.
// AlreadyExists otherwise, naming the folder and the fix.
absl::Status CheckOutputFolder(const std::string& out_dir);

// Writes the whole output. `summary` (inputs: SAE, model, dataset, options) is extended with
// the counts and timings and written as summary.json.
// `stop`, polled between chunks, abandons the output (the temporary folder is removed) with
// Cancelled.
absl::Status WriteFeatureOutput(const std::string& out_dir, const FeatureReport& report,
                                const at::Tensor& contexts,
                                const tokenizer::Gpt2Tokenizer* tokenizer, nlohmann::json summary,
                                const std::function<bool()>& stop = nullptr);

}  // namespace sae::features

#endif  // SAE_CORE_FEATURES_FEATURE_OUTPUT_H_
