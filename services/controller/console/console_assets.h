// The console's static files, embedded in the binary at build time
// (services/controller/console/CMakeLists.txt generates console_assets.cc): the HTML, JS and CSS
// in services/controller/console/assets/, and uPlot's uPlot.iife.min.js and uPlot.min.css from
// the npm cache that scripts/fetch-assets.sh fills (CMake cache variable SAE_UPLOT_DIR).
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ASSETS_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ASSETS_H_

#include <string_view>

namespace sae::controller {

struct ConsoleAsset {
  std::string_view name;          // "index.html", "console.js", "uPlot.iife.min.js", ...
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view body;
};

// The asset called `name`, or nullptr.
const ConsoleAsset* FindConsoleAsset(std::string_view name);

// Whether uPlot was found when the binary was built. Without it the console shows tables and
// says what to run instead of charts.
bool ConsoleHasUplot();

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ASSETS_H_
