// CPU kernels for sparse activations. TopK: every row of a batch has K active latents given by
// indices [B,K] (int64) and values [B,K] (float32). The ReLU family's sparse step: the entries
// of a [B,S] pre-activation matrix grouped by latent (LatentEntries). All tensors contiguous
// float32.
#ifndef SAE_CORE_SAE_SPARSE_KERNELS_H_
#define SAE_CORE_SAE_SPARSE_KERNELS_H_

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

namespace sae::sparse {

// out[b] += sum_j values[b,j] * rows[indices[b,j]]           rows [S,D], out [B,D]
void SparseRowsCombine(const at::Tensor& rows, const at::Tensor& indices, const at::Tensor& values,
                       at::Tensor& out);

// dot[b,j] = g[b] . rows[indices[b,j]]                         g [B,D], returns [B,K]
at::Tensor SparseRowsDot(const at::Tensor& rows, const at::Tensor& indices, const at::Tensor& g);

// grad_rows[indices[b,j]] += values[b,j] * g[b]                grad_rows [S,D]
void SparseRowsAccumulate(const at::Tensor& indices, const at::Tensor& values, const at::Tensor& g,
                          at::Tensor& grad_rows);

// grad_cols[d, indices[b,j]] += inputs[b,d] * values[b,j]      grad_cols [D,S], inputs [B,D]
void SparseColumnsAccumulate(const at::Tensor& inputs, const at::Tensor& indices,
                             const at::Tensor& values, at::Tensor& grad_cols);

// ---- The sparse step of the ReLU-family SAEs (standard, jumprelu, gated) ----

// The entries of a [B,S] pre-activation matrix that a sparse step touches, grouped by latent
// (compressed sparse columns): latent j's entries are start[j] .. start[j+1]-1, with the token
// (row) index in ascending order and the pre-activation at the entry. `extra` is an optional
// second value per entry (gated: the magnitude path's pre-activation).
struct LatentEntries {
  int64_t batch = 0;
  int64_t latents = 0;
  std::vector<int64_t> start;  // [S+1]
  std::vector<int32_t> token;  // [nnz]
  std::vector<float> value;    // [nnz]
  std::vector<float> extra;    // [nnz] or empty

  int64_t nnz() const { return static_cast<int64_t>(token.size()); }
  // nnz / (B * S): the fraction of the matrix the sparse step touches.
  double density() const {
    return batch * latents > 0 ? static_cast<double>(nnz()) / (static_cast<double>(batch) * latents)
                               : 0.0;
  }
};

namespace internal {
struct Entry {
  int32_t latent;
  int32_t token;
  float value;
};
// The indices j of row [n] with row[j] > lower[j] (lower null: > 0), in ascending order.
void RowCandidates(const float* row, const float* lower, int64_t n, std::vector<int32_t>& out);
// Orders chunked (latent, token, value) triples by latent (tokens stay ascending).
void BuildLatentEntries(std::vector<std::vector<Entry>>& chunks, int64_t batch, int64_t latents,
                        LatentEntries& out);
}  // namespace internal

// Collects the entries of h [B,S] (contiguous float32) where keep(value, latent) holds, in one
// parallel pass over h. Only entries above `lower` (a [S] bound, or null for 0) are offered to
// keep, so keep(v, j) must imply v > lower[j]; the bound is tested eight entries at a time.
// Returns false, leaving `out` unspecified, as soon as more than max_nnz entries are found (the
// caller then takes the dense path).
template <typename Keep>
bool CollectLatentEntries(const at::Tensor& h, int64_t max_nnz, const float* lower, Keep keep,
                          LatentEntries& out) {
  const int64_t B = h.size(0), S = h.size(1);
  const float* hp = h.data_ptr<float>();
  constexpr int64_t kRows = 16;
  const int64_t n_chunks = (B + kRows - 1) / kRows;
  std::vector<std::vector<internal::Entry>> chunks(n_chunks);
  std::atomic<int64_t> found{0};
  std::atomic<bool> over{false};
  at::parallel_for(0, n_chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<int32_t> candidates;
    for (int64_t c = c0; c < c1 && !over.load(std::memory_order_relaxed); ++c) {
      std::vector<internal::Entry>& chunk = chunks[c];
      const int64_t b1 = std::min(B, (c + 1) * kRows);
      for (int64_t b = c * kRows; b < b1; ++b) {
        const float* row = hp + b * S;
        internal::RowCandidates(row, lower, S, candidates);
        for (int32_t j : candidates) {
          if (keep(row[j], j)) chunk.push_back({j, static_cast<int32_t>(b), row[j]});
        }
      }
      const int64_t n = static_cast<int64_t>(chunk.size());
      if (found.fetch_add(n) + n > max_nnz) over.store(true);
    }
  });
  if (over.load()) return false;
  internal::BuildLatentEntries(chunks, B, S, out);
  return true;
}

// Whether the CPU has AVX2 and FMA (the vectorised kernels' requirement; else scalar loops).
bool HasAvx2Fma();

// x [n] . y [n] and y += a * x, vectorised (AVX2 + FMA where the CPU has them).
float VecDot(const float* x, const float* y, int64_t n);
void VecAxpy(float a, const float* x, float* y, int64_t n);
// Returns g . w and adds a * g to y, reading g once.
float VecDotAxpy(const float* g, const float* w, float a, float* y, int64_t n);
// Asks the cache for the n floats at p (software prefetch of the next entry's rows).
void PrefetchRow(const float* p, int64_t n);

// out[b] += sum over latent j's entries (b, e) of coef[e] * rows[j]   rows [S,D], out [B,D],
// coef [nnz] (entries with coef 0 are skipped). Threads own disjoint column ranges of out.
void LatentEntriesCombine(const at::Tensor& rows, const LatentEntries& entries, const float* coef,
                          at::Tensor& out);
// The same over the entries of latents [first_latent, end_latent) only.
void LatentEntriesCombine(const at::Tensor& rows, const LatentEntries& entries, const float* coef,
                          int64_t first_latent, int64_t end_latent, at::Tensor& out);

// For every latent j (in parallel over blocks of consecutive latents) calls
// body(j, in_col, out_col): in_col is column j of `in` [D,S] (nullptr when `in` is undefined) and
// out_col a zeroed scratch of D floats that is then written to column j of `out` [D,S] (every
// column of out is written, zeros for latents the body leaves alone; with `out` undefined
// nothing is written). The body may write per-latent outputs (rows, vector entries) of latent j
// only.
void ForEachLatentColumn(const at::Tensor& in, const at::Tensor& out,
                         const std::function<void(int64_t, const float*, float*)>& body);

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SPARSE_KERNELS_H_
