#include "tools/saectl/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace sae::saectl {

std::string ProgressBar(int64_t done, int64_t total, int width) {
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0;
  const int filled = std::clamp(static_cast<int>(width * fraction), 0, width);
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

bool ProgressOnTerminal() { return ::isatty(STDERR_FILENO) != 0; }

void RedrawProgressLine(const std::string& text, bool last) {
  std::fprintf(stderr, "\r%s   ", text.c_str());
  if (last) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace sae::saectl
