// An SAE as an evaluation sees it: its parameters, where in the model it reads, and how its
// input is cut from that hook's value and its reconstruction put back.
//
// Hook values are [B,T,d] (residual stream, attention/MLP outputs, MLP hooks) or [B,T,H,d_head]
// (hook_q/k/v/z). As SAELens's evals.py does, a per-head hook with a head index feeds the SAE
// that head's [d_head] slice and only that head is replaced or zero-ablated; without a head
// index the heads are flattened to [H*d_head] and the whole hook is replaced or ablated.
#ifndef SAE_CORE_EVAL_SAE_FOR_EVAL_H_
#define SAE_CORE_EVAL_SAE_FOR_EVAL_H_

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_config.h"
#include "core/model/gpt2_model.h"
#include "core/model/hook_point.h"
#include "core/sae/sae_options.h"
#include "core/sae/sparse_autoencoder.h"

namespace sae::eval {

// What an evaluation needs of an SAE. The training loop builds one from the trainer's current
// parameters (the tensors are read, never written); `saectl eval` from a SAELens folder.
struct SaeForEval {
  sparse::SaeOptions options;    // architecture, d_in, d_sae, k
  sparse::SaeParameters params;  // SAELens layout; any float dtype (computed in float32)
  std::string hook_name;         // TransformerLens name, e.g. "blocks.2.hook_resid_pre"
  int hook_head_index = -1;      // per-head hooks only; -1: every head, flattened
};

// What a SAELens cfg.json says about how the SAE was trained, for the evaluation's defaults.
// Keys are read at the top level (this project's exports, SAELens < 6) or under "metadata"
// (SAELens 6).
struct SaeTrainingSetup {
  int64_t context_size = 128;
  bool prepend_bos = true;
  // From model_from_pretrained_kwargs: all four TransformerLens processing flags true (or the
  // kwargs absent: from_pretrained's defaults) -> kTransformerLens; all false -> kNone; only
  // center_writing_weights false -> kTransformerLensUncentered; another mix is not a processing
  // this engine has: nullopt.
  std::optional<model::Processing> processing = model::Processing::kTransformerLens;
  std::string model_name;
};

// The SAE of a folder read by io::ReadSaeLens. Supports the standard (ReLU), TopK, JumpReLU and
// gated architectures with normalize_activations "none". apply_b_dec_to_input false is folded
// into b_enc (b_enc + b_dec W_enc; gated: b_gate and b_mag), which encodes the same function. InvalidArgument/Unimplemented
// name `dir`'s cfg.json and the key.
absl::StatusOr<SaeForEval> SaeForEvalFromSaeLens(const io::SaeLensSae& sae, const std::string& dir);
SaeTrainingSetup TrainingSetupFromSaeLens(const io::SaeLensSae& sae);

// Checks that `sae` can read the model: the hook exists in a model of `config`, is a [B,T,...]
// activation (not attention scores or patterns), a head index only on a per-head hook and below
// n_head, and d_in equal to the hook's width. Errors (InvalidArgument, OutOfRange for a layer
// the model lacks) name both the SAE's side and the model's.
absl::StatusOr<model::HookPoint> CheckSaeFitsModel(const SaeForEval& sae,
                                                   const model::Gpt2Config& config,
                                                   const std::string& model_label);

// Cuts the SAE's input out of a hook value and puts a reconstruction back.
class HookSite {
 public:
  HookSite(model::HookPoint hook, int head_index) : hook_(hook), head_index_(head_index) {}

  // The SAE's input, [B*T, d_in] float32: value [B,T,d] flattened, [B,T,H,dh] -> head slice or
  // all heads flattened.
  at::Tensor SaeInput(const at::Tensor& value) const;
  // `value` with the SAE's part replaced by `x_hat` ([B*T, d_in]), in value's dtype and shape.
  at::Tensor Replace(const at::Tensor& value, const at::Tensor& x_hat) const;
  // `value` with the SAE's part set to zero (the whole hook, or one head).
  at::Tensor Ablate(const at::Tensor& value) const;

  const model::HookPoint& hook() const { return hook_; }
  int head_index() const { return head_index_; }

 private:
  model::HookPoint hook_;
  int head_index_;
};

}  // namespace sae::eval

#endif  // SAE_CORE_EVAL_SAE_FOR_EVAL_H_
