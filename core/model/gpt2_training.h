// Training GPT-2: a forward with LibTorch autograd over Hugging Face-layout parameters, AdamW
// (torch.optim.AdamW's update, weight decay on matrices only), clipping by global norm, and
// the learning-rate schedule (linear warm-up, then cosine decay).
#ifndef SAE_CORE_MODEL_GPT2_TRAINING_H_
#define SAE_CORE_MODEL_GPT2_TRAINING_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/model/gpt2_weights.h"

namespace sae::model {

// GPT-2 whose parameters are autograd leaves. The forward is Hugging Face's GPT2LMHeadModel
// without dropout (the same operations as Gpt2Model with Processing::kNone, so the logits equal
// the engine's on the same weights). Works in float32 (training) and float64 (gradient checks).
class Gpt2TrainingModel {
 public:
  // Takes `weights` (their dtype is kept; a tied lm_head stays tied: one parameter, wte) and
  // marks every parameter as requiring gradients. The tensors are cloned, so `weights` is not
  // changed by training.
  explicit Gpt2TrainingModel(const Gpt2Weights& weights);

  // tokens [B,T] integer ids, T <= n_positions -> logits [B,T,V] in the parameters' dtype.
  at::Tensor Logits(const at::Tensor& tokens) const;

  // Mean next-token cross-entropy (nats) over the B*(T-1) predictions of `tokens` [B,T]:
  // position t predicts token t+1. A 0-dim tensor in the parameters' dtype.
  at::Tensor Loss(const at::Tensor& tokens) const;

  // Loss(tokens) and its gradients, accumulated into every parameter's grad() as
  // Loss(tokens).backward() would, with the unembedding and the cross-entropy (the costliest part
  // of a small GPT-2: (B*(T-1)) x V logits) done by hand in chunks of `chunk_rows` rows through
  // one reused buffer instead of autograd's full-size logits, their log-softmax and gradient.
  double LossAndBackward(const at::Tensor& tokens, int64_t chunk_rows = 128) const;

  // Loss(tokens) without gradients, computed in chunks like LossAndBackward.
  double LossWithoutGradients(const at::Tensor& tokens, int64_t chunk_rows = 128) const;

  // Parameters in Hugging Face's naming (Gpt2Weights::Named: "wte.weight", "h.0.ln_1.weight",
  // ...). The tensors are the model's own (handles), so their grad() are the gradients.
  std::vector<std::pair<std::string, at::Tensor>> Parameters() const { return weights_.Named(); }

  // The current parameters, detached (shared storage; copy before changing them).
  const Gpt2Weights& weights() const { return weights_; }
  const Gpt2Config& config() const { return weights_.config; }

 private:
  // The final LayerNorm's output [B,T,D] for tokens [B,T].
  at::Tensor Hidden(const at::Tensor& tokens) const;

  // Sum of the next-token losses of `hidden` [N,D] (detached) against `targets` [N]. When
  // `grad_hidden` is given, also writes d(sum/N)/d(hidden) into it ([N,D]) and adds
  // d(sum/N)/d(lm_head) into `grad_unembedding` ([V,D]).
  double ChunkedLoss(const at::Tensor& hidden, const at::Tensor& targets, int64_t chunk_rows,
                     at::Tensor* grad_hidden, at::Tensor* grad_unembedding) const;

  Gpt2Weights weights_;
};

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  // Decoupled weight decay (torch.optim.AdamW), applied to parameters of 2 or more dimensions
  // (embeddings and weight matrices); biases and LayerNorm parameters are not decayed.
  double weight_decay = 0.1;
  // Gradients are scaled by min(1, max_grad_norm / (norm + 1e-6)) where norm is the L2 norm of
  // all gradients together (torch.nn.utils.clip_grad_norm_). <= 0: no clipping.
  double max_grad_norm = 1.0;
};

// torch.optim.AdamW (single-tensor, no amsgrad) over named parameters, with clipping.
class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> parameters, AdamWOptions options);

  // Clips the parameters' gradients (in place) and applies one update with learning rate `lr`;
  // then clears the gradients. Returns the global gradient norm before clipping. A parameter
  // without a gradient is not updated (its moments are unchanged).
  double Step(double lr);

  // Updates done so far (torch's `step`, which sets the bias corrections).
  int64_t step() const { return step_; }

  // The moments as "exp_avg.NAME" and "exp_avg_sq.NAME" (the optimiser's whole state with step).
  std::vector<std::pair<std::string, at::Tensor>> State() const;
  // Restores State() and step. InvalidArgument naming a missing or wrongly shaped tensor.
  absl::Status Restore(const std::map<std::string, at::Tensor>& state, int64_t step);

  // Whether `name` is decayed (a parameter of 2 or more dimensions).
  bool Decays(const std::string& name) const;

 private:
  struct Slot {
    std::string name;
    at::Tensor param, exp_avg, exp_avg_sq;
    bool decay = false;
  };
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// Linear warm-up from peak/warmup_steps to `peak` over the first `warmup_steps` steps, then
// cosine decay from `peak` to `min` at the last step (nanoGPT's schedule).
struct LearningRateSchedule {
  double peak = 1e-3;
  double min = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // The learning rate of step `step` (0-based).
  double At(int64_t step) const;
};

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_GPT2_TRAINING_H_
