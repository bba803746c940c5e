// CPU kernels for sparse activations: every row of a batch has K active latents given by
// indices [B,K] (int64) and values [B,K] (float32). All tensors contiguous float32.
#ifndef SAE_CORE_SAE_SPARSE_KERNELS_H_
#define SAE_CORE_SAE_SPARSE_KERNELS_H_

#include <ATen/ATen.h>

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

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SPARSE_KERNELS_H_
