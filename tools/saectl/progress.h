// The one-line progress display of saectl's training commands, redrawn in place on a terminal.
#ifndef SAE_TOOLS_SAECTL_PROGRESS_H_
#define SAE_TOOLS_SAECTL_PROGRESS_H_

#include <cstdint>
#include <string>

namespace sae::saectl {

// "[#####...................]": `done` of `total` in `width` cells (clamped to [0, width]).
std::string ProgressBar(int64_t done, int64_t total, int width = 24);

// Whether stderr is a terminal (then progress is redrawn in place; otherwise logged in lines).
bool ProgressOnTerminal();

// Redraws the current stderr line with `text` (padding over a longer previous line) and ends
// the line when `last`.
void RedrawProgressLine(const std::string& text, bool last);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_PROGRESS_H_
