#include "bench/bench_util.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace sae::bench {

double MeasureGemmGflops(int m, int k, int n) {
  at::Tensor a = at::randn({m, k}), b = at::randn({k, n});
  at::Tensor c = at::empty({m, n});
  double s = MedianSeconds([&] { at::mm_out(c, a, b); }, 7, 2);
  return 2.0 * m * k * n / s / 1e9;
}

std::string RunAndCaptureLastLine(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return "";
  std::string out, line;
  std::array<char, 4096> buf;
  while (std::fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  size_t end = out.find_last_not_of("\n");
  if (end == std::string::npos) return "";
  size_t start = out.find_last_of('\n', end);
  return out.substr(start == std::string::npos ? 0 : start + 1,
                    end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::string PeerVenvPython() {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
  };
  std::string path = env("SAE_PEER_PYTHON");
  if (path.empty() && !env("SAE_PEER_VENV").empty()) path = env("SAE_PEER_VENV") + "/bin/python";
  if (path.empty()) {
    std::string cache = env("SAE_CACHE_DIR");
    if (cache.empty()) {
      const std::string xdg = env("XDG_CACHE_HOME");
      cache = (xdg.empty() ? env("HOME") + "/.cache" : xdg) + "/sae-service";
    }
    path = cache + "/peer-venv/bin/python";
  }
  return ::access(path.c_str(), X_OK) == 0 ? path : "";
}

std::string SourceDir() {
  const char* env = std::getenv("SAE_SOURCE_DIR");
  return env != nullptr ? env : SAE_DEFAULT_SOURCE_DIR;
}

}  // namespace sae::bench
