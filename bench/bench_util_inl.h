#ifndef SAE_BENCH_BENCH_UTIL_INL_H_
#define SAE_BENCH_BENCH_UTIL_INL_H_

#include <algorithm>
#include <chrono>

namespace sae::bench {

template <typename Fn>
double MedianSeconds(Fn&& fn, int reps, int warmup) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace sae::bench

#endif  // SAE_BENCH_BENCH_UTIL_INL_H_
