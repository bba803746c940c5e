// The geometric median of a set of points (the seed's b_dec initialisation).
#ifndef SAE_CORE_SAE_GEOMETRIC_MEDIAN_H_
#define SAE_CORE_SAE_GEOMETRIC_MEDIAN_H_

#include <ATen/ATen.h>

namespace sae::sparse {

struct GeometricMedianResult {
  at::Tensor median;  // [D]
  int iterations = 0;
  double objective = 0;  // sum_i ||p_i - median||
};

// Weiszfeld's algorithm on `points` [N,D]: start at the mean; weights 1 / max(||p_i - m||,
// 1e-6); m = sum w_i p_i / sum w_i; stop when the objective's relative change is <= ftol or
// after max_iterations. Computed in float64; the median is returned in the points' dtype.
GeometricMedianResult GeometricMedian(const at::Tensor& points, int max_iterations = 100,
                                      double ftol = 1e-20);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_GEOMETRIC_MEDIAN_H_
