#include "core/config/run_config.h"

#include "absl/strings/str_cat.h"
#include "core/config/field.h"

namespace sae::config {

bool operator==(const RunConfig& a, const RunConfig& b) {
  for (const internal::Field& field : internal::Fields()) {
    if (!field.equal(a, b)) return false;
  }
  return a.hook_points == b.hook_points && a.sweep == b.sweep;
}

std::string KeyLocation(const RunConfig& config, absl::string_view key) {
  auto it = config.source.lines.find(key);
  if (it == config.source.lines.end()) return config.source.name;
  if (it->second == RunConfigSource::kOverrideLine) return "--set";
  return absl::StrCat(config.source.name, ":", it->second);
}

absl::Status ConfigKeyError(const RunConfig& config, absl::string_view key,
                            absl::string_view message) {
  auto spelling = config.source.spellings.find(key);
  absl::string_view written = spelling != config.source.spellings.end() ? spelling->second : key;
  return absl::InvalidArgumentError(
      absl::StrCat(KeyLocation(config, key), ": ", written, ": ", message));
}

int64_t TotalTrainingSteps(const RunConfig& config) {
  return config.train_batch_size > 0 ? config.total_training_tokens / config.train_batch_size : 0;
}

std::optional<int64_t> EffectiveDSae(const RunConfig& config) {
  if (config.d_sae) return config.d_sae;
  if (config.d_in && config.expansion_factor) return *config.d_in * *config.expansion_factor;
  return std::nullopt;
}

double EffectiveLrEnd(const RunConfig& config) {
  return config.lr_end ? *config.lr_end : config.lr / 10;
}

}  // namespace sae::config
