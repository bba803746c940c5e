// TransformerLens hook points of GPT-2: names, parsing, shapes and their order in the forward.
//
// Hook names follow TransformerLens exactly ("blocks.2.hook_resid_pre", "blocks.0.attn.hook_z",
// "ln_final.hook_normalized", ...). This header has no LibTorch dependency so configuration
// validation can use it.
#ifndef SAE_CORE_MODEL_HOOK_POINT_H_
#define SAE_CORE_MODEL_HOOK_POINT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace sae::model {

// Where in the forward pass a hook sits. The enumerators of per-block hooks are in forward order.
enum class HookKind : int {
  kEmbed = 0,  // hook_embed            [B,T,D]
  kPosEmbed,   // hook_pos_embed        [B,T,D]
  // Per block (layer L):
  kResidPre,       // blocks.L.hook_resid_pre        [B,T,D]
  kLn1Scale,       // blocks.L.ln1.hook_scale        [B,T,1]
  kLn1Normalized,  // blocks.L.ln1.hook_normalized   [B,T,D]
  kQ,              // blocks.L.attn.hook_q           [B,T,H,dh]
  kK,              // blocks.L.attn.hook_k           [B,T,H,dh]
  kV,              // blocks.L.attn.hook_v           [B,T,H,dh]
  kAttnScores,     // blocks.L.attn.hook_attn_scores [B,H,T,T]
  kPattern,        // blocks.L.attn.hook_pattern     [B,H,T,T]
  kZ,              // blocks.L.attn.hook_z           [B,T,H,dh]
  kAttnOut,        // blocks.L.hook_attn_out         [B,T,D]
  kResidMid,       // blocks.L.hook_resid_mid        [B,T,D]
  kLn2Scale,       // blocks.L.ln2.hook_scale        [B,T,1]
  kLn2Normalized,  // blocks.L.ln2.hook_normalized   [B,T,D]
  kMlpPre,         // blocks.L.mlp.hook_pre          [B,T,d_mlp]
  kMlpPost,        // blocks.L.mlp.hook_post         [B,T,d_mlp]
  kMlpOut,         // blocks.L.hook_mlp_out          [B,T,D]
  kResidPost,      // blocks.L.hook_resid_post       [B,T,D]
  // After the last block:
  kLnFinalScale,       // ln_final.hook_scale            [B,T,1]
  kLnFinalNormalized,  // ln_final.hook_normalized       [B,T,D]
};

inline constexpr int kNumHookKinds = static_cast<int>(HookKind::kLnFinalNormalized) + 1;

// The dimensions a hook's shape depends on.
struct ModelDims {
  int n_layer = 0;
  int d_model = 0;
  int n_head = 0;
  int d_mlp = 0;
  int n_ctx = 0;
  int d_vocab = 0;
  int d_head() const { return n_head > 0 ? d_model / n_head : 0; }
};

// A parsed hook point. `layer` is -1 for hooks outside the blocks.
struct HookPoint {
  HookKind kind = HookKind::kResidPre;
  int layer = -1;

  bool is_block_hook() const { return layer >= 0; }
  // True for hooks whose last two dimensions are (head, d_head): q, k, v, z.
  bool is_per_head() const;
  // The TransformerLens name, e.g. "blocks.2.hook_resid_pre".
  std::string Name() const;
  // Shape for a batch of `batch` sequences of `tokens` tokens.
  std::vector<int64_t> Shape(const ModelDims& dims, int64_t batch, int64_t tokens) const;
  // The size of the last dimension the seed would train on: d_model for residual and
  // attn/mlp outputs, d_mlp for mlp hooks, d_head for per-head hooks with a head index, and
  // n_head * d_head when no head index is given (heads flattened).
  int64_t ActivationSize(const ModelDims& dims, bool has_head_index) const;
  // A position in the forward pass: hooks that run earlier have smaller ordinals.
  int Ordinal(int n_layer) const;
  // The deepest block the forward must run to reach this hook: the seed's hook_point_layer.
  // Hooks before the blocks give 0, ln_final hooks give n_layer - 1.
  int BlockLayer(int n_layer) const;

  friend bool operator==(const HookPoint& a, const HookPoint& b) {
    return a.kind == b.kind && a.layer == b.layer;
  }
  friend bool operator<(const HookPoint& a, const HookPoint& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.kind < b.kind;
  }
};

// Parses a TransformerLens hook name. InvalidArgument names the hook and lists the valid forms;
// OutOfRange when the layer does not exist in a model with `n_layer` layers (pass n_layer <= 0
// to skip the range check).
absl::StatusOr<HookPoint> ParseHookPoint(absl::string_view name, int n_layer);

// Every hook point of a model with `n_layer` layers, in forward order.
std::vector<HookPoint> AllHookPoints(int n_layer);

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_HOOK_POINT_H_
