#include "core/sae/sparse_kernels.h"

#include <ATen/Parallel.h>

namespace sae::sparse {

void SparseRowsCombine(const at::Tensor& rows, const at::Tensor& indices, const at::Tensor& values,
                       at::Tensor& out) {
  const int64_t B = indices.size(0), K = indices.size(1), D = rows.size(1);
  const float* w = rows.data_ptr<float>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* val = values.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* ob = o + b * D;
      for (int64_t j = 0; j < K; ++j) {
        const float a = val[b * K + j];
        if (a == 0.0f) continue;
        const float* r = w + idx[b * K + j] * D;
        for (int64_t d = 0; d < D; ++d) ob[d] += a * r[d];
      }
    }
  });
}

at::Tensor SparseRowsDot(const at::Tensor& rows, const at::Tensor& indices, const at::Tensor& g) {
  const int64_t B = indices.size(0), K = indices.size(1), D = rows.size(1);
  at::Tensor out = at::empty({B, K}, g.options());
  const float* w = rows.data_ptr<float>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* gp = g.data_ptr<float>();
  float* o = out.data_ptr<float>();
  at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* gb = gp + b * D;
      for (int64_t j = 0; j < K; ++j) {
        const float* r = w + idx[b * K + j] * D;
        float acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += gb[d] * r[d];
        o[b * K + j] = acc;
      }
    }
  });
  return out;
}

void SparseRowsAccumulate(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& g,
                          at::Tensor& grad_rows) {
  const int64_t B = indices.size(0), K = indices.size(1), D = g.size(1);
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* val = values.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* out = grad_rows.data_ptr<float>();
  // Threads own disjoint column ranges, so rows hit by several tokens need no atomics.
  const int64_t chunk = 64;
  at::parallel_for(0, (D + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    const int64_t d0 = cb * chunk, d1 = std::min(D, ce * chunk);
    for (int64_t b = 0; b < B; ++b) {
      const float* gb = gp + b * D;
      for (int64_t j = 0; j < K; ++j) {
        const float a = val[b * K + j];
        if (a == 0.0f) continue;
        float* r = out + idx[b * K + j] * D;
        for (int64_t d = d0; d < d1; ++d) r[d] += a * gb[d];
      }
    }
  });
}

void SparseColumnsAccumulate(const at::Tensor& inputs, const at::Tensor& indices,
                             const at::Tensor& values, at::Tensor& grad_cols) {
  const int64_t B = indices.size(0), K = indices.size(1), D = inputs.size(1), S = grad_cols.size(1);
  // inputs^T [D,B] so that each thread reads one contiguous row per d.
  at::Tensor inputs_t = inputs.t().contiguous();
  const float* xt = inputs_t.data_ptr<float>();
  const int64_t* idx = indices.data_ptr<int64_t>();
  const float* val = values.data_ptr<float>();
  float* out = grad_cols.data_ptr<float>();
  at::parallel_for(0, D, 8, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      const float* xd = xt + d * B;
      float* row = out + d * S;
      for (int64_t b = 0; b < B; ++b) {
        const float xv = xd[b];
        for (int64_t j = 0; j < K; ++j) row[idx[b * K + j]] += xv * val[b * K + j];
      }
    }
  });
}

}  // namespace sae::sparse
