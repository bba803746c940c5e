#include "core/sae/geometric_median.h"

#include <cmath>

namespace sae::sparse {

GeometricMedianResult GeometricMedian(const at::Tensor& points, int max_iterations, double ftol) {
  at::Tensor p = points.to(at::kDouble);
  at::Tensor m = p.mean(0);
  double objective = (p - m).norm(2, {1}).sum().item<double>();
  GeometricMedianResult result;
  for (int i = 0; i < max_iterations; ++i) {
    at::Tensor w = 1.0 / (p - m).norm(2, {1}).clamp_min(1e-6);  // [N]
    m = at::matmul(w, p) / w.sum();
    double next = (p - m).norm(2, {1}).sum().item<double>();
    ++result.iterations;
    bool converged = std::abs(objective - next) <= ftol * next;
    objective = next;
    if (converged) break;
  }
  result.median = m.to(points.scalar_type());
  result.objective = objective;
  return result;
}

}  // namespace sae::sparse
