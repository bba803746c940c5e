#include "core/sae/geometric_median.h"

#include <gtest/gtest.h>

namespace sae::sparse {
namespace {

double Objective(const at::Tensor& points, const at::Tensor& m) {
  return (points.to(at::kDouble) - m.to(at::kDouble)).norm(2, {1}).sum().item<double>();
}

TEST(GeometricMedianTest, MatchesABruteForceMinimiserInTwoDimensions) {
  at::manual_seed(4);
  for (int trial = 0; trial < 5; ++trial) {
    at::Tensor points = at::randn({7, 2}, at::kDouble);
    GeometricMedianResult r = GeometricMedian(points);
    // Brute force: a 101 x 101 grid around the mean, refined twice around its best point.
    at::Tensor best = points.mean(0);
    double grid_best = Objective(points, best);
    for (double span : {3.0, 0.06, 0.0012}) {
      at::Tensor c = best.clone();
      for (int i = -50; i <= 50; ++i) {
        for (int j = -50; j <= 50; ++j) {
          at::Tensor cand = c + at::tensor({span * i / 50, span * j / 50}, at::kDouble);
          double obj = Objective(points, cand);
          if (obj < grid_best) {
            grid_best = obj;
            best = cand;
          }
        }
      }
    }
    double best_obj = Objective(points, r.median);
    EXPECT_LE(best_obj, grid_best + 1e-9) << "trial " << trial;
    EXPECT_LT((r.median - best).norm().item<double>(), 1e-3) << "trial " << trial;
  }
}

TEST(GeometricMedianTest, IsRobustToOutliers) {
  at::manual_seed(5);
  at::Tensor cluster = at::randn({200, 16}) * 0.1;
  at::Tensor outliers = at::full({20, 16}, 1000.0f);
  at::Tensor points = at::cat({cluster, outliers});
  GeometricMedianResult r = GeometricMedian(points);
  EXPECT_LT(r.median.norm().item<double>(), 0.5);          // stays with the cluster
  EXPECT_GT(points.mean(0).norm().item<double>(), 300.0);  // the mean does not
  EXPECT_LE(r.iterations, 100);
}

TEST(GeometricMedianTest, OfIdenticalPointsIsThatPoint) {
  at::Tensor points = at::ones({10, 3}) * 2.5;
  EXPECT_TRUE(at::allclose(GeometricMedian(points).median, at::ones({3}) * 2.5));
}

}  // namespace
}  // namespace sae::sparse
