// Rank 0's uploads of checkpoints and of the final SAE to the controller.
#ifndef SAE_SERVICES_TRAINER_CHECKPOINT_UPLOAD_H_
#define SAE_SERVICES_TRAINER_CHECKPOINT_UPLOAD_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sae/v1/controller.pb.h"
#include "services/common/worker_agent.h"

namespace sae::trainer {

// Uploads the folder `dir` as `header` describes (the worker id is filled in here).
//   - A checkpoint the controller cannot take now (it is away) is logged and OK is returned:
//     training goes on, and the next checkpoint will do.
//   - The final SAE is retried with a backoff of 1 s doubling to 5 s until the controller takes
//     it, since the run's result is in it.
// Cancelled when the controller refuses it for good (FailedPrecondition or NotFound: the run or
// generation moved on) or once `abort` is set.
absl::Status UploadCheckpoint(client::WorkerAgent& agent, v1::UploadHeader header,
                              const std::string& dir, const std::atomic<bool>& abort);

// The header of the checkpoint (or, `final`, the final SAE) of `assignment`'s run and
// generation at `step`; a run of many SAEs lists their names (`saes`, empty for one SAE).
v1::UploadHeader CheckpointHeader(const v1::Assignment& assignment, int64_t step, int64_t tokens,
                                  bool final, const std::vector<std::string>& saes);

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_CHECKPOINT_UPLOAD_H_
