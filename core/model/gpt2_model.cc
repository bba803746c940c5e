#include "core/model/gpt2_model.h"

#include <c10/core/InferenceMode.h>

#include <climits>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/util/status.h"

namespace sae::model {
namespace {

std::string ShapeString(at::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// Subtracts the mean over `dim` (keeping dimensions).
at::Tensor Centered(const at::Tensor& t, int64_t dim) { return t - t.mean(dim, /*keepdim=*/true); }

}  // namespace

absl::StatusOr<Processing> ParseProcessing(absl::string_view name) {
  return config::ParseChoice<Processing>(name, "processing");
}

absl::string_view ProcessingName(Processing processing) { return config::ToString(processing); }

HookFunction Splice(at::Tensor value) {
  return [value](const at::Tensor& current) {
    return value.to(current.scalar_type()).expand(current.sizes());
  };
}

HookFunction ZeroAblate() {
  return [](const at::Tensor& current) { return at::zeros_like(current); };
}

// The state of one forward: which hooks to capture or change, and where to stop.
class Gpt2Model::Run {
 public:
  Run(const Gpt2Model& model, const ForwardRequest& request) : n_layer_(model.config_.n_layer) {
    const int slots = HookPoint{HookKind::kLnFinalNormalized, -1}.Ordinal(n_layer_) + 1;
    capture_.assign(slots, false);
    functions_.assign(slots, {});
    for (const HookPoint& h : request.capture) {
      int ord = h.Ordinal(n_layer_);
      capture_[ord] = true;
      stop_ = std::max(stop_, ord);
    }
    for (const auto& [h, fn] : request.interventions) {
      int ord = h.Ordinal(n_layer_);
      functions_[ord].push_back(&fn);
      stop_ = std::max(stop_, ord);
    }
    if (request.logits || request.loss) stop_ = INT_MAX;
  }

  // Passes `value` through the hook at (kind, layer): applies interventions, captures it, and
  // records whether the forward may stop here.
  at::Tensor Hook(HookKind kind, int layer, at::Tensor value) {
    HookPoint h{kind, layer};
    int ord = h.Ordinal(n_layer_);
    for (const HookFunction* fn : functions_[ord]) {
      if (!error_.ok()) break;
      at::Tensor changed = (*fn)(value);
      if (!changed.defined() || changed.sizes() != value.sizes()) {
        error_ = absl::InvalidArgumentError(
            absl::StrCat("intervention at ", h.Name(), " returned shape ",
                         changed.defined() ? ShapeString(changed.sizes()) : "undefined",
                         ", expected ", ShapeString(value.sizes())));
        break;
      }
      value = changed.to(value.scalar_type());
    }
    if (capture_[ord]) result.activations[h.Name()] = value;
    if (ord >= stop_) done_ = true;
    return value;
  }

  // True when the hook at (kind, layer) is captured or changed, so its value must be computed
  // explicitly rather than inside a fused kernel.
  bool Active(HookKind kind, int layer) const {
    int ord = HookPoint{kind, layer}.Ordinal(n_layer_);
    return capture_[ord] || !functions_[ord].empty() || ord >= stop_;
  }

  bool done() const { return done_ || !error_.ok(); }
  const absl::Status& error() const { return error_; }

  ForwardResult result;

 private:
  int n_layer_;
  int stop_ = -1;
  bool done_ = false;
  absl::Status error_;
  std::vector<bool> capture_;
  std::vector<std::vector<const HookFunction*>> functions_;
};

absl::StatusOr<std::unique_ptr<Gpt2Model>> Gpt2Model::Load(const std::string& folder,
                                                           const ModelOptions& options) {
  SAE_ASSIGN_OR_RETURN(Gpt2Weights weights, LoadGpt2Weights(folder));
  return FromWeights(weights, options);
}

absl::StatusOr<std::unique_ptr<Gpt2Model>> Gpt2Model::Load(const std::string& folder,
                                                           const Gpt2Config& config,
                                                           const ModelOptions& options) {
  SAE_ASSIGN_OR_RETURN(Gpt2Weights weights, LoadGpt2Weights(folder, config));
  return FromWeights(weights, options);
}

absl::StatusOr<std::unique_ptr<Gpt2Model>> Gpt2Model::FromWeights(const Gpt2Weights& weights,
                                                                  const ModelOptions& options) {
  if (options.dtype != at::kFloat && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported model dtype ",
                                                   c10::toString(options.dtype),
                                                   " (expected float32 or bfloat16)"));
  }
  std::unique_ptr<Gpt2Model> model(new Gpt2Model(weights.config, options));
  try {
    c10::InferenceMode guard;
    model->Build(weights);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building GPT-2 failed: ", e.what_without_backtrace()));
  }
  return model;
}

void Gpt2Model::Build(const Gpt2Weights& w) {
  // Processing runs in float64 so that folding adds no rounding beyond the final cast.
  auto f64 = [](const at::Tensor& t) { return t.to(at::kDouble).clone(); };
  w_e_ = f64(w.wte);
  w_pos_ = f64(w.wpe);
  for (const Gpt2BlockWeights& b : w.blocks) {
    Block blk;
    blk.ln1 = {f64(b.ln_1_weight), f64(b.ln_1_bias)};
    blk.w_qkv = f64(b.attn_c_attn_weight);
    blk.b_qkv = f64(b.attn_c_attn_bias);
    blk.w_o = f64(b.attn_c_proj_weight);
    blk.b_o = f64(b.attn_c_proj_bias);
    blk.ln2 = {f64(b.ln_2_weight), f64(b.ln_2_bias)};
    blk.w_in = f64(b.mlp_c_fc_weight);
    blk.b_in = f64(b.mlp_c_fc_bias);
    blk.w_out = f64(b.mlp_c_proj_weight);
    blk.b_out = f64(b.mlp_c_proj_bias);
    blocks_.push_back(std::move(blk));
  }
  ln_final_ = {f64(w.ln_f_weight), f64(w.ln_f_bias)};
  w_u_ = f64(w.lm_head).t().contiguous();  // [D,V]
  if (options_.processing != Processing::kNone) {
    ApplyTransformerLensProcessing(options_.processing == Processing::kTransformerLens);
  }

  const at::ScalarType dt = options_.dtype;
  auto cast = [dt](at::Tensor& t) {
    if (t.defined()) t = t.to(dt).contiguous();
  };
  cast(w_e_);
  cast(w_pos_);
  for (Block& b : blocks_) {
    for (at::Tensor* t : {&b.ln1.weight, &b.ln1.bias, &b.w_qkv, &b.b_qkv, &b.w_o, &b.b_o,
                          &b.ln2.weight, &b.ln2.bias, &b.w_in, &b.b_in, &b.w_out, &b.b_out}) {
      cast(*t);
    }
  }
  cast(ln_final_.weight);
  cast(ln_final_.bias);
  cast(w_u_);
  cast(b_u_);
}

void Gpt2Model::ApplyTransformerLensProcessing(bool center_writing_weights) {
  // fold_ln: each LayerNorm's affine map moves into the linear map that reads its output, and
  // those reading weights are centred over d_model (a no-op on normalised inputs).
  auto fold = [](LayerNormParams& ln, at::Tensor& w, at::Tensor& b) {
    at::Tensor folded_b = at::matmul(ln.bias, w);
    b = b.defined() ? b + folded_b : folded_b;
    w = Centered(ln.weight.unsqueeze(1) * w, 0);
    ln = {};
  };
  for (Block& blk : blocks_) {
    fold(blk.ln1, blk.w_qkv, blk.b_qkv);
    fold(blk.ln2, blk.w_in, blk.b_in);
  }
  fold(ln_final_, w_u_, b_u_);

  // center_writing_weights: everything that writes into the residual stream has zero mean over
  // d_model, so every residual-stream activation is centred.
  if (center_writing_weights) {
    w_e_ = Centered(w_e_, 1);
    w_pos_ = Centered(w_pos_, 1);
    for (Block& blk : blocks_) {
      blk.w_o = Centered(blk.w_o, 1);
      blk.b_o = Centered(blk.b_o, 0);
      blk.w_out = Centered(blk.w_out, 1);
      blk.b_out = Centered(blk.b_out, 0);
    }
  }

  // center_unembed: logits shift by a constant per position; log-probabilities are unchanged.
  w_u_ = Centered(w_u_, 1);
  b_u_ = Centered(b_u_, 0);

  // fold_value_biases: pattern rows sum to one, so b_V contributes b_V @ W_O to every output.
  const int64_t D = config_.n_embd;
  for (Block& blk : blocks_) {
    at::Tensor b_v = blk.b_qkv.narrow(0, 2 * D, D);
    blk.b_o = blk.b_o + at::matmul(b_v, blk.w_o);
    blk.b_qkv = blk.b_qkv.clone();
    blk.b_qkv.narrow(0, 2 * D, D).zero_();
  }
}

absl::StatusOr<ForwardResult> Gpt2Model::Forward(const at::Tensor& tokens_in,
                                                 const ForwardRequest& request) const {
  const Gpt2Config& c = config_;
  if (!tokens_in.defined() || tokens_in.dim() != 2 ||
      !at::isIntegralType(tokens_in.scalar_type(), /*includeBool=*/false)) {
    return absl::InvalidArgumentError("tokens must be a 2-D integer tensor [batch, positions]");
  }
  const int64_t B = tokens_in.size(0), T = tokens_in.size(1);
  if (B == 0 || T == 0) return absl::InvalidArgumentError("tokens must not be empty");
  if (T > c.n_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence of ", T, " tokens exceeds the model's n_ctx of ", c.n_positions));
  }
  for (const HookPoint& h : request.capture) {
    if (h.is_block_hook() && h.layer >= c.n_layer) {
      return absl::OutOfRangeError(
          absl::StrCat("hook ", h.Name(), " is beyond the model's ", c.n_layer, " layers"));
    }
  }
  for (const auto& [h, fn] : request.interventions) {
    if (h.is_block_hook() && h.layer >= c.n_layer) {
      return absl::OutOfRangeError(
          absl::StrCat("hook ", h.Name(), " is beyond the model's ", c.n_layer, " layers"));
    }
  }

  try {
    c10::InferenceMode guard;
    at::Tensor tokens = tokens_in.to(at::kLong).contiguous();
    int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
    if (lo < 0 || hi >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token id ", lo < 0 ? lo : hi, " is outside the vocabulary [0, ", c.vocab_size, ")"));
    }
    Run run(*this, request);
    const int64_t D = c.n_embd, H = c.n_head, dh = c.d_head(), M = c.d_mlp();
    const double eps = c.layer_norm_epsilon;

    // LayerNorm with its two hooks; fused unless a hook needs the intermediate values.
    auto layer_norm = [&](const at::Tensor& x, const LayerNormParams& p, HookKind scale_kind,
                          HookKind norm_kind, int layer) -> at::Tensor {
      if (!run.Active(scale_kind, layer) && !run.Active(norm_kind, layer)) {
        return at::layer_norm(x, {D}, p.weight, p.bias, eps);
      }
      at::Tensor xc = x - x.mean(-1, /*keepdim=*/true);
      at::Tensor scale = (xc.pow(2).mean(-1, /*keepdim=*/true) + eps).sqrt();
      scale = run.Hook(scale_kind, layer, scale);
      if (run.done()) return {};
      at::Tensor normalized = run.Hook(norm_kind, layer, xc / scale);
      if (run.done()) return {};
      return p.weight.defined() ? at::addcmul(p.bias, normalized, p.weight) : normalized;
    };

    // (B,T,D) embeddings.
    at::Tensor embed =
        run.Hook(HookKind::kEmbed, -1, w_e_.index_select(0, tokens.view(-1)).view({B, T, D}));
    if (run.done()) return std::move(run.result);
    at::Tensor pos =
        run.Hook(HookKind::kPosEmbed, -1, w_pos_.narrow(0, 0, T).unsqueeze(0).expand({B, T, D}));
    if (run.done()) return std::move(run.result);
    at::Tensor resid = embed + pos;

    // (T,T) additive causal mask: 0 on and below the diagonal, -inf above.
    at::Tensor causal = at::full({T, T}, -std::numeric_limits<float>::infinity(),
                                 at::TensorOptions().dtype(options_.dtype))
                            .triu(1);
    const double attn_scale = 1.0 / std::sqrt(static_cast<double>(dh));

    for (int l = 0; l < c.n_layer; ++l) {
      const Block& blk = blocks_[l];
      resid = run.Hook(HookKind::kResidPre, l, resid);
      if (run.done()) break;

      // Attention.
      at::Tensor y = layer_norm(resid, blk.ln1, HookKind::kLn1Scale, HookKind::kLn1Normalized, l);
      if (run.done()) break;
      at::Tensor qkv =
          at::addmm(blk.b_qkv, y.reshape({B * T, D}), blk.w_qkv).view({B, T, 3, H, dh});
      at::Tensor q = run.Hook(HookKind::kQ, l, qkv.select(2, 0));  // (B,T,H,dh)
      if (run.done()) break;
      at::Tensor k = run.Hook(HookKind::kK, l, qkv.select(2, 1));
      if (run.done()) break;
      at::Tensor v = run.Hook(HookKind::kV, l, qkv.select(2, 2));
      if (run.done()) break;
      at::Tensor qh = q.permute({0, 2, 1, 3}).reshape({B * H, T, dh});
      at::Tensor kh = k.permute({0, 2, 3, 1}).reshape({B * H, dh, T});
      at::Tensor scores =
          at::baddbmm(causal, qh, kh, /*beta=*/1, /*alpha=*/attn_scale).view({B, H, T, T});
      scores = run.Hook(HookKind::kAttnScores, l, scores);
      if (run.done()) break;
      at::Tensor pattern = run.Hook(HookKind::kPattern, l, at::softmax(scores, -1));
      if (run.done()) break;
      at::Tensor vh = v.permute({0, 2, 1, 3}).reshape({B * H, T, dh});
      at::Tensor z = at::bmm(pattern.reshape({B * H, T, T}), vh)
                         .view({B, H, T, dh})
                         .permute({0, 2, 1, 3});  // (B,T,H,dh)
      z = run.Hook(HookKind::kZ, l, z);
      if (run.done()) break;
      at::Tensor attn_out =
          run.Hook(HookKind::kAttnOut, l,
                   at::addmm(blk.b_o, z.reshape({B * T, D}), blk.w_o).view({B, T, D}));
      if (run.done()) break;
      resid = run.Hook(HookKind::kResidMid, l, resid + attn_out);
      if (run.done()) break;

      // MLP.
      y = layer_norm(resid, blk.ln2, HookKind::kLn2Scale, HookKind::kLn2Normalized, l);
      if (run.done()) break;
      at::Tensor pre =
          run.Hook(HookKind::kMlpPre, l,
                   at::addmm(blk.b_in, y.reshape({B * T, D}), blk.w_in).view({B, T, M}));
      if (run.done()) break;
      at::Tensor post =
          run.Hook(HookKind::kMlpPost, l,
                   c.activation_function == "gelu" ? at::gelu(pre) : at::gelu(pre, "tanh"));
      if (run.done()) break;
      at::Tensor mlp_out =
          run.Hook(HookKind::kMlpOut, l,
                   at::addmm(blk.b_out, post.reshape({B * T, M}), blk.w_out).view({B, T, D}));
      if (run.done()) break;
      resid = run.Hook(HookKind::kResidPost, l, resid + mlp_out);
      if (run.done()) break;
    }
    if (!run.error().ok()) return run.error();
    if (run.done()) return std::move(run.result);

    at::Tensor y =
        layer_norm(resid, ln_final_, HookKind::kLnFinalScale, HookKind::kLnFinalNormalized, -1);
    if (!run.error().ok()) return run.error();
    if (!request.logits && !request.loss) return std::move(run.result);
    at::Tensor logits = at::matmul(y, w_u_);
    if (b_u_.defined()) logits.add_(b_u_);
    logits = logits.to(at::kFloat);
    if (request.loss) {
      at::Tensor log_probs = at::log_softmax(logits.narrow(1, 0, T - 1), -1);
      run.result.loss =
          log_probs.gather(-1, tokens.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1).neg();
    }
    if (request.logits) run.result.logits = logits;
    return std::move(run.result);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("GPT-2 forward failed: ", e.what_without_backtrace()));
  }
}

}  // namespace sae::model
