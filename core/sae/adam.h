// Adam (torch.optim.Adam's single-tensor algorithm: betas (default 0.9, 0.999), eps 1e-8, no
// weight decay, no AMSGrad), one fused pass per parameter over contiguous float32 CPU tensors.
#ifndef SAE_CORE_SAE_ADAM_H_
#define SAE_CORE_SAE_ADAM_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace sae::sparse {

class Adam {
 public:
  static constexpr double kBeta1 = 0.9;
  static constexpr double kBeta2 = 0.999;
  static constexpr double kEps = 1e-8;

  // Creates zero moments shaped like each parameter. Parameters must be contiguous float32;
  // betas in [0, 1) (run.yaml adam_beta1, adam_beta2).
  explicit Adam(const std::vector<at::Tensor>& params, double beta1 = kBeta1,
                double beta2 = kBeta2);

  // Updates param i with grads[i] at learning rate `lr`; increments the step count first.
  void Step(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads, double lr);

  // First and second moments of parameter i (for checkpoints and resampling).
  at::Tensor& exp_avg(size_t i) { return exp_avg_[i]; }
  at::Tensor& exp_avg_sq(size_t i) { return exp_avg_sq_[i]; }
  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }
  size_t size() const { return exp_avg_.size(); }

 private:
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  double beta1_, beta2_;
  int64_t step_ = 0;
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_ADAM_H_
