// Process-wide LibTorch settings.
#ifndef SAE_CORE_UTIL_TORCH_RUNTIME_H_
#define SAE_CORE_UTIL_TORCH_RUNTIME_H_

namespace sae {

// Sets LibTorch's intra-op thread count to `threads` (<= 0 means one per core) and its
// inter-op pool to one thread. LibTorch defaults to a single thread on these machines, so every
// binary calls this once at start-up. Returns the count in effect.
int ConfigureTorchThreads(int threads);

// LibTorch's OpenMP threads spin while they wait for work (libgomp's default ACTIVE policy).
// On a machine whose cores are shared (an activation server and a trainer side by side, or
// OpenBLAS's own threads) the spinning steals the cores that do the work: measured here, a
// training run went from 45k to 111k tokens/s with passive waits. libgomp reads the policy once,
// when the program loads, so this sets OMP_WAIT_POLICY=PASSIVE and re-executes the program with
// the same arguments. It does nothing when OMP_WAIT_POLICY is already set (so a user's choice
// wins) or when the program's own file cannot be executed. Call first thing in main().
void UsePassiveOpenMpWaits(char** argv);

// Sends log lines (spdlog's default logger) to stderr, so that stdout carries only a command's
// output (run ids, JSON, tables). `name` tags each line.
void LogToStderr(const char* name);

}  // namespace sae

#endif  // SAE_CORE_UTIL_TORCH_RUNTIME_H_
