#include "core/util/torch_runtime.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <thread>

#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace sae {

int ConfigureTorchThreads(int threads) {
  if (threads <= 0) {
    const char* env = std::getenv("SAE_TORCH_THREADS");
    threads = env != nullptr ? std::atoi(env) : 0;
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  static std::once_flag interop_once;
  std::call_once(interop_once, [] {
    try {
      at::set_num_interop_threads(1);
    } catch (...) {
      // Already started by an earlier parallel call; the default is kept.
    }
  });
  at::set_num_threads(threads);
  return at::get_num_threads();
}

void UsePassiveOpenMpWaits(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  // The real path, not /proc/self/exe, so that the process keeps its name (ps, pkill).
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return;
  path[n] = '\0';
  ::execv(path, argv);
  // Still here: exec failed; carry on with the default policy.
}

void LogToStderr(const char* name) {
  spdlog::set_default_logger(spdlog::stderr_color_mt(name));
}

}  // namespace sae
