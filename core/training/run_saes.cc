#include "core/training/run_saes.h"

#include <map>

#include "core/config/sweep.h"
#include "core/training/run_assets.h"
#include "core/util/status.h"

namespace sae::training {

absl::StatusOr<RunSaes> ResolveRunSaes(const config::RunConfig& run) {
  RunSaes result;
  if (config::TrainsManySaes(run)) {
    config::RunConfig checked = run;  // every SAE against the model; errors name the SAE
    SAE_RETURN_IF_ERROR(ResolveRunConfig(checked));
  }
  SAE_ASSIGN_OR_RETURN(std::vector<config::SaeChild> children, config::ExpandSaes(run));
  for (config::SaeChild& child : children) {
    RunSae sae;
    sae.name = std::move(child.name);
    sae.config = std::move(child.config);
    SAE_RETURN_IF_ERROR(ResolveRunConfig(sae.config));
    result.saes.push_back(std::move(sae));
  }
  std::map<std::string, int64_t> first_column;  // hook -> its first column in a batch
  for (const std::string& hook : config::RunHookPoints(run)) {
    for (const RunSae& sae : result.saes) {
      if (sae.config.hook_point != hook) continue;
      if (result.width > 0) result.more_hooks.push_back(*sae.config.source.resolved_hook);
      first_column[hook] = result.width;
      result.width += sae.config.d_in.value_or(0);
      break;
    }
  }
  for (RunSae& sae : result.saes) sae.first_column = first_column[sae.config.hook_point];
  return result;
}

}  // namespace sae::training
