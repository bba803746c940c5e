// Process-wide LibTorch settings.
#ifndef SAE_CORE_UTIL_TORCH_RUNTIME_H_
#define SAE_CORE_UTIL_TORCH_RUNTIME_H_

namespace sae {

// Sets LibTorch's intra-op thread count to `threads` (<= 0 means one per core) and its
// inter-op pool to one thread. LibTorch defaults to a single thread on these machines, so every
// binary calls this once at start-up. Returns the count in effect.
int ConfigureTorchThreads(int threads);

}  // namespace sae

#endif  // SAE_CORE_UTIL_TORCH_RUNTIME_H_
