// GPT-2 forward pass in LibTorch with TransformerLens hook points.
//
// The model reads its weights from a Hugging Face folder (or from Gpt2Weights), optionally
// applies TransformerLens's weight processing, and runs a forward over token ids that can
// capture any set of hooks, replace a hook's value (splice, ablation) and stop as soon as the
// deepest hook it needs has been computed.
#ifndef SAE_CORE_MODEL_GPT2_MODEL_H_
#define SAE_CORE_MODEL_GPT2_MODEL_H_

#include <ATen/ATen.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/choices.h"
#include "core/model/gpt2_config.h"
#include "core/model/gpt2_weights.h"
#include "core/model/hook_point.h"

namespace sae::model {

// Weight processing (core/config/choices.h): kTransformerLens is HookedTransformer.from_pretrained's
// defaults (fold_ln, center_writing_weights, center_unembed, fold_value_biases: residual-stream
// hooks are centred over d_model, hook_v and hook_z lose b_V, log-probabilities are unchanged);
// kTransformerLensUncentered is the same without center_writing_weights (SAELens's default
// model_from_pretrained_kwargs: residual-stream hooks keep Hugging Face's values);
// kNone keeps Hugging Face's values.
using Processing = config::Processing;

// "transformer_lens", "transformer_lens_uncentered" or "none"; InvalidArgument otherwise.
absl::StatusOr<Processing> ParseProcessing(absl::string_view name);
absl::string_view ProcessingName(Processing processing);

struct ModelOptions {
  // Weight processing; default: TransformerLens's, as SAELens's public SAEs expect.
  Processing processing = Processing::kTransformerLens;
  // Compute type: at::kFloat (default) or at::kBFloat16.
  at::ScalarType dtype = at::kFloat;
};

// Changes a hook's value in flight. Receives the value computed by the model and returns the
// value the rest of the forward sees, which must have the same shape.
using HookFunction = std::function<at::Tensor(const at::Tensor& value)>;

// Replaces the hook's value with `value` (broadcast to the hook's shape).
HookFunction Splice(at::Tensor value);
// Replaces the hook's value with zeros.
HookFunction ZeroAblate();

// What a forward computes and returns.
struct ForwardRequest {
  std::vector<HookPoint> capture;                                 // returned by name in activations
  std::vector<std::pair<HookPoint, HookFunction>> interventions;  // applied in forward order
  bool logits = false;                                            // return logits [B,T,V] (float32)
  bool loss = false;  // return next-token cross-entropy per position [B,T-1] (float32)
};

struct ForwardResult {
  // Captured hooks by TransformerLens name, in the model's compute dtype, after any
  // intervention at that hook.
  std::map<std::string, at::Tensor> activations;
  at::Tensor logits;
  at::Tensor loss;
};

// Immutable after construction; Forward may run from several threads at once.
class Gpt2Model {
 public:
  static absl::StatusOr<std::unique_ptr<Gpt2Model>> Load(const std::string& folder,
                                                         const ModelOptions& options);
  // The same with `folder`'s config.json already read (LoadGpt2Config): it is not read again.
  static absl::StatusOr<std::unique_ptr<Gpt2Model>> Load(const std::string& folder,
                                                         const Gpt2Config& config,
                                                         const ModelOptions& options);
  static absl::StatusOr<std::unique_ptr<Gpt2Model>> FromWeights(const Gpt2Weights& weights,
                                                                const ModelOptions& options);

  // Runs the forward over `tokens` ([B,T] integer ids, T <= n_positions). The forward stops
  // after the deepest captured or intervened hook unless logits or loss are requested.
  // InvalidArgument for bad token ids or shapes and for interventions that return a tensor of
  // the wrong shape.
  absl::StatusOr<ForwardResult> Forward(const at::Tensor& tokens,
                                        const ForwardRequest& request) const;

  const Gpt2Config& config() const { return config_; }
  const ModelOptions& options() const { return options_; }

 private:
  struct LayerNormParams {
    at::Tensor weight, bias;  // undefined when folded into the next linear map (LNPre)
  };
  struct Block {
    LayerNormParams ln1, ln2;
    at::Tensor w_qkv, b_qkv;  // [D,3D], [3D]
    at::Tensor w_o, b_o;      // [D,D], [D]
    at::Tensor w_in, b_in;    // [D,Dm], [Dm]
    at::Tensor w_out, b_out;  // [Dm,D], [D]
  };
  class Run;

  Gpt2Model(Gpt2Config config, ModelOptions options) : config_(config), options_(options) {}
  void Build(const Gpt2Weights& weights);
  // fold_ln, center_unembed, fold_value_biases and, when asked, center_writing_weights.
  void ApplyTransformerLensProcessing(bool center_writing_weights);

  Gpt2Config config_;
  ModelOptions options_;
  at::Tensor w_e_;    // [V,D]
  at::Tensor w_pos_;  // [P,D]
  std::vector<Block> blocks_;
  LayerNormParams ln_final_;
  at::Tensor w_u_;  // [D,V]
  at::Tensor b_u_;  // [V] or undefined
};

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_GPT2_MODEL_H_
