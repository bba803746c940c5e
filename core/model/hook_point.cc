#include "core/model/hook_point.h"

#include <array>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace sae::model {
namespace {

struct KindName {
  HookKind kind;
  const char* suffix;  // after "blocks.L." for block hooks; the whole name otherwise
};

constexpr std::array<KindName, kNumHookKinds> kNames = {{
    {HookKind::kEmbed, "hook_embed"},
    {HookKind::kPosEmbed, "hook_pos_embed"},
    {HookKind::kResidPre, "hook_resid_pre"},
    {HookKind::kLn1Scale, "ln1.hook_scale"},
    {HookKind::kLn1Normalized, "ln1.hook_normalized"},
    {HookKind::kQ, "attn.hook_q"},
    {HookKind::kK, "attn.hook_k"},
    {HookKind::kV, "attn.hook_v"},
    {HookKind::kAttnScores, "attn.hook_attn_scores"},
    {HookKind::kPattern, "attn.hook_pattern"},
    {HookKind::kZ, "attn.hook_z"},
    {HookKind::kAttnOut, "hook_attn_out"},
    {HookKind::kResidMid, "hook_resid_mid"},
    {HookKind::kLn2Scale, "ln2.hook_scale"},
    {HookKind::kLn2Normalized, "ln2.hook_normalized"},
    {HookKind::kMlpPre, "mlp.hook_pre"},
    {HookKind::kMlpPost, "mlp.hook_post"},
    {HookKind::kMlpOut, "hook_mlp_out"},
    {HookKind::kResidPost, "hook_resid_post"},
    {HookKind::kLnFinalScale, "ln_final.hook_scale"},
    {HookKind::kLnFinalNormalized, "ln_final.hook_normalized"},
}};

bool IsBlockKind(HookKind kind) {
  return kind >= HookKind::kResidPre && kind <= HookKind::kResidPost;
}

constexpr int kBlockKinds =
    static_cast<int>(HookKind::kResidPost) - static_cast<int>(HookKind::kResidPre) + 1;

absl::Status BadName(absl::string_view name) {
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown hook point '", name,
      "'; expected TransformerLens names such as hook_embed, hook_pos_embed, "
      "blocks.L.hook_resid_pre|hook_resid_mid|hook_resid_post|hook_attn_out|hook_mlp_out, "
      "blocks.L.ln1|ln2.hook_scale|hook_normalized, "
      "blocks.L.attn.hook_q|hook_k|hook_v|hook_z|hook_attn_scores|hook_pattern, "
      "blocks.L.mlp.hook_pre|hook_post, ln_final.hook_scale|hook_normalized"));
}

}  // namespace

bool HookPoint::is_per_head() const {
  return kind == HookKind::kQ || kind == HookKind::kK || kind == HookKind::kV ||
         kind == HookKind::kZ;
}

std::string HookPoint::Name() const {
  const char* suffix = kNames[static_cast<int>(kind)].suffix;
  if (IsBlockKind(kind)) return absl::StrCat("blocks.", layer, ".", suffix);
  return suffix;
}

std::vector<int64_t> HookPoint::Shape(const ModelDims& d, int64_t batch, int64_t tokens) const {
  switch (kind) {
    case HookKind::kLn1Scale:
    case HookKind::kLn2Scale:
    case HookKind::kLnFinalScale:
      return {batch, tokens, 1};
    case HookKind::kQ:
    case HookKind::kK:
    case HookKind::kV:
    case HookKind::kZ:
      return {batch, tokens, d.n_head, d.d_head()};
    case HookKind::kAttnScores:
    case HookKind::kPattern:
      return {batch, d.n_head, tokens, tokens};
    case HookKind::kMlpPre:
    case HookKind::kMlpPost:
      return {batch, tokens, d.d_mlp};
    default:
      return {batch, tokens, d.d_model};
  }
}

int64_t HookPoint::ActivationSize(const ModelDims& d, bool has_head_index) const {
  if (is_per_head())
    return has_head_index ? d.d_head() : static_cast<int64_t>(d.n_head) * d.d_head();
  std::vector<int64_t> shape = Shape(d, 1, 1);
  return shape.back();
}

int HookPoint::Ordinal(int n_layer) const {
  if (kind == HookKind::kEmbed) return 0;
  if (kind == HookKind::kPosEmbed) return 1;
  if (IsBlockKind(kind)) {
    return 2 + layer * kBlockKinds +
           (static_cast<int>(kind) - static_cast<int>(HookKind::kResidPre));
  }
  return 2 + n_layer * kBlockKinds +
         (static_cast<int>(kind) - static_cast<int>(HookKind::kLnFinalScale));
}

int HookPoint::BlockLayer(int n_layer) const {
  if (IsBlockKind(kind)) return layer;
  if (kind == HookKind::kEmbed || kind == HookKind::kPosEmbed) return 0;
  return n_layer - 1;
}

absl::StatusOr<HookPoint> ParseHookPoint(absl::string_view name, int n_layer) {
  for (const KindName& k : kNames) {
    if (!IsBlockKind(k.kind) && name == k.suffix) return HookPoint{k.kind, -1};
  }
  constexpr absl::string_view kPrefix = "blocks.";
  if (name.substr(0, kPrefix.size()) != kPrefix) return BadName(name);
  absl::string_view rest = name.substr(kPrefix.size());
  size_t dot = rest.find('.');
  if (dot == absl::string_view::npos) return BadName(name);
  int layer = 0;
  if (!absl::SimpleAtoi(rest.substr(0, dot), &layer) || layer < 0) return BadName(name);
  absl::string_view suffix = rest.substr(dot + 1);
  for (const KindName& k : kNames) {
    if (IsBlockKind(k.kind) && suffix == k.suffix) {
      if (n_layer > 0 && layer >= n_layer) {
        return absl::OutOfRangeError(absl::StrCat("hook point '", name, "' names layer ", layer,
                                                  " but the model has ", n_layer, " layers (0..",
                                                  n_layer - 1, ")"));
      }
      return HookPoint{k.kind, layer};
    }
  }
  return BadName(name);
}

std::vector<HookPoint> AllHookPoints(int n_layer) {
  std::vector<HookPoint> all = {{HookKind::kEmbed, -1}, {HookKind::kPosEmbed, -1}};
  for (int l = 0; l < n_layer; ++l) {
    for (int k = static_cast<int>(HookKind::kResidPre); k <= static_cast<int>(HookKind::kResidPost);
         ++k) {
      all.push_back({static_cast<HookKind>(k), l});
    }
  }
  all.push_back({HookKind::kLnFinalScale, -1});
  all.push_back({HookKind::kLnFinalNormalized, -1});
  return all;
}

}  // namespace sae::model
