#include "services/trainer/checkpoint_upload.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {

absl::Status UploadCheckpoint(client::WorkerAgent& agent, v1::UploadHeader header,
                              const std::string& dir, const std::atomic<bool>& abort) {
  const bool final = header.final();
  const int64_t step = header.step();
  const char* what = final ? "final SAE" : "checkpoint";
  absl::Duration backoff = absl::Seconds(1);
  while (true) {
    header.set_worker_id(agent.worker_id());
    absl::StatusOr<v1::CheckpointManifest> manifest = agent.client().UploadCheckpoint(header, dir);
    if (manifest.ok()) {
      spdlog::info("uploaded the {} at step {} ({} bytes)", what, step, manifest->total_bytes());
      return absl::OkStatus();
    }
    const absl::Status& status = manifest.status();
    if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status) || abort.load()) {
      return absl::CancelledError(
          absl::StrCat("the ", what, " at step ", step, " was not accepted: ", status.message()));
    }
    if (!final) {
      spdlog::warn("the checkpoint at step {} was not uploaded ({}); training goes on", step,
                   std::string(status.message()));
      return absl::OkStatus();
    }
    spdlog::warn("the final SAE was not uploaded ({}); retrying in {}",
                 std::string(status.message()), absl::FormatDuration(backoff));
    for (absl::Time until = absl::Now() + backoff; absl::Now() < until && !abort.load();) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

v1::UploadHeader CheckpointHeader(const v1::Assignment& assignment, int64_t step, int64_t tokens,
                                  bool final, const std::vector<std::string>& saes) {
  v1::UploadHeader header;
  header.set_run_id(assignment.run_id());
  header.set_generation(assignment.generation());
  header.set_step(step);
  header.set_tokens(tokens);
  header.set_final(final);
  for (const std::string& name : saes) header.add_saes(name);
  return header;
}

}  // namespace sae::trainer
