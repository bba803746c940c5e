// What a run's SAEs hold in memory while they train, estimated from a resolved config: for
// `saectl submit --dry-run` (one SAE or many, core/config/sweep.h) and, later, for placing the
// SAEs of a sweep on trainers. Float32 throughout; the model's weights and LibTorch's own
// allocations are not counted.
#ifndef SAE_CORE_CONFIG_MEMORY_ESTIMATE_H_
#define SAE_CORE_CONFIG_MEMORY_ESTIMATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/config/sweep.h"

namespace sae::config {

// One SAE's state for the whole run, in bytes.
struct SaeMemory {
  std::string name;
  int64_t d_in = 0;
  int64_t d_sae = 0;
  int64_t parameters = 0;     // W_enc, W_dec, biases and the architecture's extra vectors
  int64_t adam = 0;           // Adam's two moments: 2 x parameters
  int64_t gradients = 0;      // the step buffer's gradients: 1 x parameters
  int64_t feature_state = 0;  // dead-feature counters and window frequencies (2 x 8 x d_sae)
  int64_t total() const { return parameters + adam + gradients + feature_state; }
};

// A run's estimate: every SAE's state, plus what is shared.
struct RunMemory {
  std::vector<SaeMemory> saes;
  // One step's forward and backward temporaries: pre-activations, activations and their
  // gradients (3 x batch x d_sae) and input, reconstruction and residual (3 x batch x d_in), for
  // the largest SAE: the SAEs of a run step one after another and reuse them.
  int64_t step = 0;
  // The mixing buffer: n_batches_in_buffer x store_batch_size x context_size rows of every
  // hook's columns, plus one batch of them taken out.
  int64_t buffer = 0;
  int64_t total() const;
};

// `saes` are the run's SAEs resolved against the model (ExpandSaes(config, dims)); `run` the
// run's config (batch and buffer sizes). With trainers > 1 the step and batch are per trainer.
RunMemory EstimateMemory(const RunConfig& run, const std::vector<SaeChild>& saes);

}  // namespace sae::config

#endif  // SAE_CORE_CONFIG_MEMORY_ESTIMATE_H_
