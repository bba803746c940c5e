// Test data: activations drawn from a known sparse dictionary, and how many of its directions an
// SAE's decoder found. For the dictionary-recovery tests of every architecture.
#ifndef SAE_CORE_SAE_SPARSE_DICTIONARY_H_
#define SAE_CORE_SAE_SPARSE_DICTIONARY_H_

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>

namespace sae::sparse {

// `atoms` unit directions in `dim` dimensions, `active` of them per sample with magnitudes in
// [0.5, 1.5), plus a little noise.
class SparseDictionary {
 public:
  SparseDictionary(int64_t atoms, int64_t dim, int64_t active, uint64_t seed)
      : active_(active), gen_(at::detail::createCPUGenerator(seed)) {
    directions_ = at::randn({atoms, dim}, gen_);
    directions_ /= directions_.norm(2, {1}, true);
  }

  // [n, dim] samples.
  at::Tensor Sample(int64_t n) {
    const int64_t atoms = directions_.size(0);
    at::Tensor idx = at::randint(0, atoms, {n, active_}, gen_);
    at::Tensor mag = at::rand({n, active_}, gen_) + 0.5;
    at::Tensor codes = at::zeros({n, atoms}).scatter_add_(1, idx, mag);
    return at::matmul(codes, directions_) + 0.01 * at::randn({n, directions_.size(1)}, gen_);
  }

  // Fraction of true directions with a decoder row at cosine >= threshold.
  double Recovered(const at::Tensor& W_dec, double threshold) const {
    at::Tensor rows = W_dec / W_dec.norm(2, {1}, true);
    at::Tensor cos = at::matmul(directions_, rows.t());  // [atoms, d_sae]
    at::Tensor best = std::get<0>(cos.max(1));
    return (best >= threshold).to(at::kFloat).mean().item<double>();
  }

 private:
  int64_t active_;
  at::Generator gen_;
  at::Tensor directions_;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_SPARSE_DICTIONARY_H_
