#include "core/sae/sparse_kernels.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <cstring>

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

namespace {

// AVX2 + FMA versions, chosen at run time (the build targets generic x86-64).
__attribute__((target("avx2,fma"))) float DotAvx2(const float* x, const float* y, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
  }
  for (; i + 8 <= n; i += 8) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
  }
  __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float out = _mm_cvtss_f32(s);
  for (; i < n; ++i) out += x[i] * y[i];
  return out;
}

__attribute__((target("avx2,fma"))) void AxpyAvx2(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    _mm256_storeu_ps(y + i + 8,
                     _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

// Returns g . w and adds a * g to y, reading g once.
__attribute__((target("avx2,fma"))) float DotAxpyAvx2(const float* g, const float* w, float a,
                                                      float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 g0 = _mm256_loadu_ps(g + i), g1 = _mm256_loadu_ps(g + i + 8);
    a0 = _mm256_fmadd_ps(g0, _mm256_loadu_ps(w + i), a0);
    a1 = _mm256_fmadd_ps(g1, _mm256_loadu_ps(w + i + 8), a1);
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, g0, _mm256_loadu_ps(y + i)));
    _mm256_storeu_ps(y + i + 8, _mm256_fmadd_ps(av, g1, _mm256_loadu_ps(y + i + 8)));
  }
  const __m256 acc = _mm256_add_ps(a0, a1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  float out = _mm_cvtss_f32(s);
  for (; i < n; ++i) {
    out += g[i] * w[i];
    y[i] += a * g[i];
  }
  return out;
}

float DotScalar(const float* x, const float* y, int64_t n) {
  float a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) a[k] += x[i + k] * y[i + k];
  }
  float out = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
  for (; i < n; ++i) out += x[i] * y[i];
  return out;
}

void AxpyScalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

bool HasAvx2Fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

float VecDot(const float* x, const float* y, int64_t n) {
  return HasAvx2Fma() ? DotAvx2(x, y, n) : DotScalar(x, y, n);
}

float VecDotAxpy(const float* g, const float* w, float a, float* y, int64_t n) {
  if (HasAvx2Fma()) return DotAxpyAvx2(g, w, a, y, n);
  const float dot = DotScalar(g, w, n);
  AxpyScalar(a, g, y, n);
  return dot;
}

void PrefetchRow(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

void VecAxpy(float a, const float* x, float* y, int64_t n) {
  if (HasAvx2Fma()) {
    AxpyAvx2(a, x, y, n);
  } else {
    AxpyScalar(a, x, y, n);
  }
}

namespace internal {

namespace {

// Appends to out the indices j in [0, n) with row[j] > lower[j] (lower may be null: 0).
__attribute__((target("avx2"))) void CandidatesAvx2(const float* row, const float* lower,
                                                    int64_t n, std::vector<int32_t>& out) {
  int64_t j = 0;
  const __m256 zero = _mm256_setzero_ps();
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(row + j);
    const __m256 t = lower ? _mm256_loadu_ps(lower + j) : zero;
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, t, _CMP_GT_OQ));
    while (mask) {
      out.push_back(static_cast<int32_t>(j + __builtin_ctz(mask)));
      mask &= mask - 1;
    }
  }
  for (; j < n; ++j) {
    if (row[j] > (lower ? lower[j] : 0.0f)) out.push_back(static_cast<int32_t>(j));
  }
}

void CandidatesScalar(const float* row, const float* lower, int64_t n,
                      std::vector<int32_t>& out) {
  for (int64_t j = 0; j < n; ++j) {
    if (row[j] > (lower ? lower[j] : 0.0f)) out.push_back(static_cast<int32_t>(j));
  }
}

}  // namespace

void RowCandidates(const float* row, const float* lower, int64_t n, std::vector<int32_t>& out) {
  out.clear();
  if (HasAvx2Fma()) {
    CandidatesAvx2(row, lower, n, out);
  } else {
    CandidatesScalar(row, lower, n, out);
  }
}

void BuildLatentEntries(std::vector<std::vector<Entry>>& chunks, int64_t batch, int64_t latents,
                        LatentEntries& out) {
  out.batch = batch;
  out.latents = latents;
  out.start.assign(latents + 1, 0);
  int64_t nnz = 0;
  for (const auto& chunk : chunks) {
    for (const Entry& e : chunk) ++out.start[e.latent + 1];
    nnz += static_cast<int64_t>(chunk.size());
  }
  for (int64_t j = 0; j < latents; ++j) out.start[j + 1] += out.start[j];
  out.token.resize(nnz);
  out.value.resize(nnz);
  out.extra.clear();
  std::vector<int64_t> next(out.start.begin(), out.start.end() - 1);
  // Chunks hold ascending rows, so each latent's tokens come out ascending.
  for (auto& chunk : chunks) {
    for (const Entry& e : chunk) {
      const int64_t at = next[e.latent]++;
      out.token[at] = e.token;
      out.value[at] = e.value;
    }
    std::vector<Entry>().swap(chunk);
  }
}

}  // namespace internal

void LatentEntriesCombine(const at::Tensor& rows, const LatentEntries& entries, const float* coef,
                          at::Tensor& out) {
  LatentEntriesCombine(rows, entries, coef, 0, entries.latents, out);
}

void LatentEntriesCombine(const at::Tensor& rows, const LatentEntries& entries, const float* coef,
                          int64_t first_latent, int64_t end_latent, at::Tensor& out) {
  const int64_t D = rows.size(1);
  const float* w = rows.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t* start = entries.start.data();
  const int32_t* token = entries.token.data();
  const int64_t nnz = entries.nnz();
  // Threads own disjoint column ranges (multiples of 16 floats) of out.
  const int64_t chunk = 16;
  at::parallel_for(0, (D + chunk - 1) / chunk, 1, [&](int64_t cb, int64_t ce) {
    const int64_t d0 = cb * chunk, d1 = std::min(D, ce * chunk);
    for (int64_t j = first_latent; j < end_latent; ++j) {
      const float* r = w + j * D + d0;
      for (int64_t e = start[j]; e < start[j + 1]; ++e) {
        if (e + 1 < nnz) PrefetchRow(o + token[e + 1] * D + d0, d1 - d0);
        if (coef[e] == 0.0f) continue;
        VecAxpy(coef[e], r, o + token[e] * D + d0, d1 - d0);
      }
    }
  });
}

void ForEachLatentColumn(const at::Tensor& in, const at::Tensor& out,
                         const std::function<void(int64_t, const float*, float*)>& body) {
  const at::Tensor& shape = out.defined() ? out : in;
  const int64_t D = shape.size(0), S = shape.size(1);
  constexpr int64_t kBlock = 16;  // latents per block: one 64-byte line of each row of out
  const float* ip = in.defined() ? in.data_ptr<float>() : nullptr;
  float* op = out.defined() ? out.data_ptr<float>() : nullptr;
  at::parallel_for(0, (S + kBlock - 1) / kBlock, 1, [&](int64_t blk0, int64_t blk1) {
    std::vector<float> out_cols(kBlock * D), in_cols(ip ? kBlock * D : 0);
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      const int64_t j0 = blk * kBlock, n = std::min(kBlock, S - j0);
      std::fill(out_cols.begin(), out_cols.end(), 0.0f);
      if (ip) {
        for (int64_t d = 0; d < D; ++d) {
          const float* src = ip + d * S + j0;
          for (int64_t k = 0; k < n; ++k) in_cols[k * D + d] = src[k];
        }
      }
      for (int64_t k = 0; k < n; ++k) {
        body(j0 + k, ip ? in_cols.data() + k * D : nullptr, out_cols.data() + k * D);
      }
      for (int64_t d = 0; op && d < D; ++d) {
        float* dst = op + d * S + j0;
        for (int64_t k = 0; k < n; ++k) dst[k] = out_cols[k * D + d];
      }
    }
  });
}

}  // namespace sae::sparse
