#include "tools/saectl/memory_report.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/memory_estimate.h"
#include "core/config/sweep.h"
#include "core/model/gpt2_config.h"
#include "tools/saectl/format.h"

namespace sae::saectl {

std::optional<config::RunMemory> EstimateRunMemory(const config::RunConfig& config,
                                                   std::string* why) {
  if (config.use_cached_activations || !config.model_path) return std::nullopt;
  absl::StatusOr<model::Gpt2Config> model = model::LoadGpt2Config(*config.model_path);
  if (!model.ok()) {
    if (why != nullptr) *why = absl::StrCat("no memory estimate: ", model.status().message());
    return std::nullopt;
  }
  absl::StatusOr<std::vector<config::SaeChild>> saes = config::ExpandSaes(config, model->dims());
  if (!saes.ok()) {
    if (why != nullptr) *why = std::string(saes.status().message());
    return std::nullopt;
  }
  if (!config::TrainsManySaes(config)) {  // a run of one SAE: resolve it for its d_in
    config::RunConfig resolved = config;
    if (!config::ResolveAgainstModel(resolved, model->dims()).ok()) return std::nullopt;
    (*saes)[0].config = resolved;
  }
  return config::EstimateMemory(config, *saes);
}

void PrintMemoryEstimate(const config::RunConfig& config) {
  std::string why;
  const std::optional<config::RunMemory> estimate = EstimateRunMemory(config, &why);
  if (!estimate) {
    if (!why.empty()) std::fprintf(stderr, "saectl: %s\n", why.c_str());
    return;
  }
  const config::RunMemory& memory = *estimate;
  std::fprintf(stderr,
               "saectl: memory estimate per trainer (float32; model weights not included):\n");
  for (const config::SaeMemory& sae : memory.saes) {
    std::fprintf(stderr,
                 "  SAE %s d_in %lld d_sae %lld: parameters %s, Adam %s, gradients %s, "
                 "feature state %s = %s\n",
                 sae.name.empty() ? "(the run's)" : sae.name.c_str(),
                 static_cast<long long>(sae.d_in), static_cast<long long>(sae.d_sae),
                 HumanBytes(sae.parameters).c_str(), HumanBytes(sae.adam).c_str(),
                 HumanBytes(sae.gradients).c_str(), HumanBytes(sae.feature_state).c_str(),
                 HumanBytes(sae.total()).c_str());
  }
  std::fprintf(stderr, "  step temporaries (largest SAE; SAEs step in turn) %s, mixing buffer %s\n",
               HumanBytes(memory.step).c_str(), HumanBytes(memory.buffer).c_str());
  std::fprintf(stderr, "  total %s\n", HumanBytes(memory.total()).c_str());
}

}  // namespace sae::saectl
