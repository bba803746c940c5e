// The memory a run's SAEs will hold, printed by saectl submit and saectl train before they start.
#ifndef SAE_TOOLS_SAECTL_MEMORY_REPORT_H_
#define SAE_TOOLS_SAECTL_MEMORY_REPORT_H_

#include "core/config/run_config.h"

namespace sae::saectl {

// What the run's SAEs hold in memory (config::EstimateMemory), when the model's config.json is
// readable here; otherwise says why there is no estimate.
void PrintMemoryEstimate(const config::RunConfig& config);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_MEMORY_REPORT_H_
