// The JSON the web console reads (docs/operations.md, "The web console"): runs, one run with its
// checkpoints and workers, its progress history as columns for charts, its events, the workers.
// Proto messages appear in proto3 JSON with the proto's field names (int64 as strings, enums by
// name), so fields other issues add to Run or RunEvent reach the console without changes here.
//
// Eval results are found generically: the newest event whose type name contains "EVAL" is the
// run's `latest_eval` (the console renders every number in it), wherever its fields live.
//
// Thread safety: thread-safe.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_API_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_API_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "services/controller/console/progress_history.h"
#include "services/controller/controller.h"

namespace sae::controller {

class ConsoleApi {
 public:
  // Both must outlive the API.
  ConsoleApi(Controller* controller, ProgressHistory* history);

  // {"runs": [run...], "now_unix_ms"}: every run in submission order (only those in `states`,
  // RunState names with or without the RUN_STATE_ prefix, when not empty), without config and
  // state history, each with `latest_eval` (an event, or null).
  nlohmann::json Runs(const std::vector<std::string>& states);

  // {"run", "checkpoints": [manifest without chunk digests...], "workers": [Worker of the
  // run's gang...], "latest_eval", "now_unix_ms"}. NotFound for an unknown run.
  absl::StatusOr<nlohmann::json> Run(const std::string& run_id);

  // The progress history as columns of equal length, by step: {"capacity", "points",
  // "columns": {"step": [...], "tokens", "time_unix_ms", "generation", and one per
  // TrainingMetrics field (null where a report did not carry an optional field)}, "saes":
  // [names of a run of many SAEs], "sae": the SAE the columns are of ("" for the run's
  // top-level metrics, which are its first SAE's)}. With `sae`, the metric columns are that
  // SAE's (null at points that lack it). NotFound for an unknown run or SAE.
  absl::StatusOr<nlohmann::json> History(const std::string& run_id, const std::string& sae = "");

  // {"events": [...], "last_sequence"}: at most `max_events` events after `after_sequence`.
  absl::StatusOr<nlohmann::json> Events(const std::string& run_id, uint64_t after_sequence,
                                        size_t max_events = 1000);

  // {"workers": [Worker... with "lease_age_ms" and "registered_age_ms"], "now_unix_ms"}.
  nlohmann::json Workers();

  Controller& controller() { return *controller_; }

 private:
  // The run's newest eval event as JSON (null when none), read incrementally from its events.
  nlohmann::json LatestEval(const std::string& run_id, uint64_t last_sequence);

  Controller* const controller_;
  ProgressHistory* const history_;

  struct EvalScan {
    uint64_t scanned = 0;  // events up to this sequence were looked at
    nlohmann::json latest;
  };
  std::mutex mutex_;  // Guards evals_.
  std::map<std::string, EvalScan> evals_;
};

// The proto3 JSON of `message` with its field names and every field, defaults included.
nlohmann::json ProtoJson(const google::protobuf::Message& message);

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_API_H_
