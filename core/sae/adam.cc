#include "core/sae/adam.h"

#include <immintrin.h>

#include "core/sae/sparse_kernels.h"

#include <ATen/Parallel.h>

#include <cmath>

namespace sae::sparse {

Adam::Adam(const std::vector<at::Tensor>& params, double beta1, double beta2)
    : beta1_(beta1), beta2_(beta2) {
  for (const at::Tensor& p : params) {
    exp_avg_.push_back(at::zeros_like(p));
    exp_avg_sq_.push_back(at::zeros_like(p));
  }
}

namespace {

// The loop below, eight entries at a time with the same IEEE operations in the same order (no
// fused multiply-add), so its results are bitwise those of the scalar loop. Returns the first
// entry it left to the scalar loop.
__attribute__((target("avx2"))) int64_t AdamAvx(float* p, const float* g, float* m, float* v,
                                                int64_t begin, int64_t end, float one_minus_b1,
                                                float b2, float one_minus_b2, float bc2_sqrt,
                                                float eps, float step_size) {
  const __m256 c1 = _mm256_set1_ps(one_minus_b1), cb2 = _mm256_set1_ps(b2);
  const __m256 c2 = _mm256_set1_ps(one_minus_b2), bc = _mm256_set1_ps(bc2_sqrt);
  const __m256 ce = _mm256_set1_ps(eps), cs = _mm256_set1_ps(step_size);
  int64_t j = begin;
  for (; j + 8 <= end; j += 8) {
    const __m256 gj = _mm256_loadu_ps(g + j);
    __m256 mj = _mm256_loadu_ps(m + j);
    __m256 vj = _mm256_loadu_ps(v + j);
    mj = _mm256_add_ps(mj, _mm256_mul_ps(c1, _mm256_sub_ps(gj, mj)));
    vj = _mm256_add_ps(_mm256_mul_ps(vj, cb2), _mm256_mul_ps(_mm256_mul_ps(c2, gj), gj));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vj), bc), ce);
    const __m256 pj =
        _mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_mul_ps(cs, _mm256_div_ps(mj, denom)));
    _mm256_storeu_ps(m + j, mj);
    _mm256_storeu_ps(v + j, vj);
    _mm256_storeu_ps(p + j, pj);
  }
  return j;
}

}  // namespace

void Adam::Step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
                double lr) {
  ++step_;
  const double bias_correction1 = 1 - std::pow(beta1_, static_cast<double>(step_));
  const double bias_correction2 = 1 - std::pow(beta2_, static_cast<double>(step_));
  const float step_size = static_cast<float>(lr / bias_correction1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
  const float one_minus_b1 = static_cast<float>(1 - beta1_);
  const float one_minus_b2 = static_cast<float>(1 - beta2_);
  const float eps = static_cast<float>(kEps);
  for (size_t i = 0; i < params.size(); ++i) {
    TORCH_CHECK(params[i].is_contiguous() && grads[i].is_contiguous() &&
                    params[i].scalar_type() == at::kFloat && grads[i].scalar_type() == at::kFloat,
                "Adam needs contiguous float32 parameters and gradients");
    float* p = params[i].data_ptr<float>();
    const float* g = grads[i].data_ptr<float>();
    float* m = exp_avg_[i].data_ptr<float>();
    float* v = exp_avg_sq_[i].data_ptr<float>();
    at::parallel_for(0, params[i].numel(), 16384, [&](int64_t begin, int64_t end) {
      if (HasAvx2Fma()) {
        begin = AdamAvx(p, g, m, v, begin, end, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps,
                        step_size);
      }
      for (int64_t j = begin; j < end; ++j) {
        // The same operations in the same order as torch.optim.Adam:
        // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
        // denom = exp_avg_sq.sqrt() / sqrt(bc2) + eps; param.addcdiv_(exp_avg, denom, -step_size)
        const float gj = g[j];
        m[j] = m[j] + one_minus_b1 * (gj - m[j]);
        v[j] = v[j] * b2 + one_minus_b2 * gj * gj;
        const float denom = std::sqrt(v[j]) / bc2_sqrt + eps;
        p[j] = p[j] - step_size * (m[j] / denom);
      }
    });
  }
  (void)b1;
}

}  // namespace sae::sparse
