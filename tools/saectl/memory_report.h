// The memory a run's SAEs will hold, printed by saectl submit and saectl train before they start.
#ifndef SAE_TOOLS_SAECTL_MEMORY_REPORT_H_
#define SAE_TOOLS_SAECTL_MEMORY_REPORT_H_

#include <optional>
#include <string>

#include "core/config/memory_estimate.h"
#include "core/config/run_config.h"

namespace sae::saectl {

// config::EstimateMemory of the run's SAEs resolved against the model's config.json; std::nullopt
// (with the reason in `why` when given) when the model's folder is not readable here or the run
// reads cached activations.
std::optional<config::RunMemory> EstimateRunMemory(const config::RunConfig& config,
                                                   std::string* why = nullptr);

// What the run's SAEs hold in memory (config::EstimateMemory), when the model's config.json is
// readable here; otherwise says why there is no estimate.
void PrintMemoryEstimate(const config::RunConfig& config);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_MEMORY_REPORT_H_
