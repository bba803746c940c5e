// The feature dashboard's static files (core/features/assets/), embedded into the binary at build
// time by embed_dashboard.cmake and written beside the data by WriteFeatureOutput.
#ifndef SAE_CORE_FEATURES_DASHBOARD_ASSETS_H_
#define SAE_CORE_FEATURES_DASHBOARD_ASSETS_H_

#include <string_view>
#include <vector>

namespace sae::features {

struct DashboardAsset {
  std::string_view path;      // relative to the output folder, e.g. "index.html"
  std::string_view contents;
};

const std::vector<DashboardAsset>& DashboardAssets();

}  // namespace sae::features

#endif  // SAE_CORE_FEATURES_DASHBOARD_ASSETS_H_
