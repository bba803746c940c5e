// Small helpers shared by the benchmarks: timing, the machine's GEMM rate, and running the
// Python eager references.
#ifndef SAE_BENCH_BENCH_UTIL_H_
#define SAE_BENCH_BENCH_UTIL_H_

#include <string>
#include <vector>

namespace sae::bench {

// Median wall-clock seconds of `reps` calls of `fn` after `warmup` calls.
template <typename Fn>
double MedianSeconds(Fn&& fn, int reps, int warmup = 1);

// fp32 GEMM rate of LibTorch (at::mm) on this machine for an m x k by k x n product, GFLOP/s.
double MeasureGemmGflops(int m, int k, int n);

// Runs `command` and returns its stdout's last line (empty on failure, with a warning printed).
std::string RunAndCaptureLastLine(const std::string& command);

// The source directory (from SAE_SOURCE_DIR or the compile-time default).
std::string SourceDir();

// Debian's interpreter, whose torch is 1.13 (the eager references' first peer).
inline constexpr char kDebianPython[] = "/usr/bin/python3";

// The peer virtual environment's interpreter (torch 2.x, made by scripts/peer-venv.sh):
// $SAE_PEER_PYTHON, else $SAE_PEER_VENV/bin/python, else CACHE/peer-venv/bin/python with CACHE
// $SAE_CACHE_DIR or ${XDG_CACHE_HOME:-$HOME/.cache}/sae-service, as the script places it. Empty
// when that file is not executable.
std::string PeerVenvPython();

}  // namespace sae::bench

#include "bench/bench_util_inl.h"

#endif  // SAE_BENCH_BENCH_UTIL_H_
