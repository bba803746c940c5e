// How saectl shows runs, events and checkpoints: the tables of `get runs` and `checkpoints`,
// the text of `describe run`, the lines of `logs`, and follow mode's progress bar.
#ifndef SAE_TOOLS_SAECTL_RUN_OUTPUT_H_
#define SAE_TOOLS_SAECTL_RUN_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "sae/v1/controller.pb.h"

namespace sae::saectl {

// `get runs` columns. table: RUN NAME STATE RESTARTS PROGRESS STEP AGE; wide adds WORKERS
// LOSS L0 EXPL.VAR CHECKPOINT MESSAGE.
std::vector<std::string> RunTableHeader(bool wide);
std::vector<std::string> RunTableRow(const v1::Run& run, bool wide, absl::Time now);

// `checkpoints` columns: STEP TOKENS SIZE CHUNKS GENERATION FINAL CREATED.
std::vector<std::string> CheckpointTableHeader();
std::vector<std::string> CheckpointTableRow(const v1::CheckpointManifest& manifest);

// `describe run`: the run's fields, workers, shards, checkpoints, state history, last error and
// config, as sections of text.
std::string DescribeRun(const v1::Run& run, const std::vector<v1::CheckpointManifest>& checkpoints,
                        const std::vector<v1::RunEvent>& events, absl::Time now);

// "STATE_CHANGED", "WORKER_LOST", ...
std::string EventTypeName(v1::RunEvent::Type type);
// One line of `logs`: "   12  2026-11-28 18:40:02 UTC  CHECKPOINT_COMMITTED  checkpoint at ...".
std::string EventLine(const v1::RunEvent& event);

// Follow mode's one-line status: "[#####.......]  45%  step 900/2000  3.69M/8.19M tok  loss
// 0.0123  L0 32.1  EV 0.812  12.3k tok/s  RUNNING".
std::string ProgressLine(const v1::Run& run, int bar_width);

// Percentage of total_tokens trained, 0 to 100.
double ProgressPercent(const v1::Run& run);

// What `submit -f` and `wait` print for a SUCCEEDED run: "run R SUCCEEDED in 3m05s: 200 steps,
// 409.6k tokens (2.21k tok/s start to end, 2.93k tok/s training); L0 42.7, explained variance
// 0.7751, dead features 0".
std::string SuccessSummary(const v1::Run& run);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_RUN_OUTPUT_H_
