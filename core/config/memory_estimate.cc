#include "core/config/memory_estimate.h"

#include <algorithm>
#include <map>

namespace sae::config {
namespace {

constexpr int64_t kFloat = 4;

// Trained tensors' elements (core/sae/sparse_autoencoder.h, SaeParameters).
int64_t ParameterCount(Architecture architecture, int64_t d_in, int64_t d_sae) {
  int64_t count = 2 * d_in * d_sae + d_in;  // W_enc, W_dec, b_dec
  switch (architecture) {
    case Architecture::kGated:
      return count + 3 * d_sae;  // r_mag, b_gate, b_mag (no b_enc)
    case Architecture::kJumpReLU:
      return count + 2 * d_sae;  // b_enc, threshold
    default:
      return count + d_sae;  // b_enc
  }
}

}  // namespace

int64_t RunMemory::total() const {
  int64_t sum = step + buffer;
  for (const SaeMemory& sae : saes) sum += sae.total();
  return sum;
}

RunMemory EstimateMemory(const RunConfig& run, const std::vector<SaeChild>& saes) {
  RunMemory memory;
  const int64_t batch = run.train_batch_size / std::max<int64_t>(1, run.trainers);
  std::map<std::string, int64_t> hook_widths;
  for (const SaeChild& child : saes) {
    const RunConfig& c = child.config;
    SaeMemory sae;
    sae.name = child.name;
    sae.d_in = c.d_in.value_or(0);
    sae.d_sae = EffectiveDSae(c).value_or(0);
    const int64_t count = ParameterCount(c.architecture, sae.d_in, sae.d_sae);
    sae.parameters = count * kFloat;
    sae.adam = 2 * count * kFloat;
    sae.gradients = count * kFloat;
    sae.feature_state = 2 * 8 * sae.d_sae;
    memory.step = std::max(memory.step, (3 * batch * sae.d_sae + 3 * batch * sae.d_in) * kFloat);
    hook_widths[c.hook_point] = sae.d_in;
    memory.saes.push_back(sae);
  }
  int64_t width = 0;
  for (const auto& [hook, d_in] : hook_widths) width += d_in;
  const int64_t rows = run.n_batches_in_buffer * run.store_batch_size * run.context_size;
  memory.buffer = (rows + batch) * width * kFloat;
  return memory;
}

}  // namespace sae::config
