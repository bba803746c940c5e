#include "core/features/feature_pass.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status.h"

namespace sae::features {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Rows of a [n, m] tensor, `count` at a time.
template <typename F>
void ForChunks(int64_t n, int64_t count, F&& f) {
  for (int64_t lo = 0; lo < n; lo += count) f(lo, std::min(count, n - lo));
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> ParseFeatureList(const std::string& list, int64_t d_sae) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    int64_t lo = 0, hi = 0;
    const size_t dash = part.find('-');
    bool ok;
    if (dash == absl::string_view::npos) {
      ok = absl::SimpleAtoi(part, &lo);
      hi = lo;
    } else {
      ok = absl::SimpleAtoi(part.substr(0, dash), &lo) &&
           absl::SimpleAtoi(part.substr(dash + 1), &hi) && lo <= hi;
    }
    if (!ok || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--features: '", part, "' is not a feature index or range (e.g. 3,17,100-199)"));
    }
    if (hi >= d_sae) {
      return absl::InvalidArgumentError(absl::StrCat("--features: feature ", hi,
                                                     " is not in the SAE, whose d_sae is ",
                                                     d_sae, " (features 0..", d_sae - 1, ")"));
    }
    for (int64_t f = lo; f <= hi; ++f) out.push_back(f);
  }
  if (out.empty()) return absl::InvalidArgumentError("--features: the list is empty");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

at::Tensor EncodeFeatureMajor(const sparse::SparseAutoencoder& sae, const at::Tensor& x,
                              const at::Tensor& features) {
  const sparse::SaeParameters& p = sae.params();
  const at::Tensor sae_in = x.to(at::kFloat) - p.b_dec;  // [n, d_in]
  const int64_t n = sae_in.size(0);
  if (sae.options().architecture == sparse::Architecture::kStandard) {
    // [F, n] = W_enc[:, F]^T sae_in^T + b_enc[F]: the GEMM writes feature-major rows directly.
    at::Tensor w = features.defined() ? p.W_enc.index_select(1, features) : p.W_enc;
    at::Tensor b = features.defined() ? p.b_enc.index_select(0, features) : p.b_enc;
    return at::addmm(b.unsqueeze(1), w.t(), sae_in.t()).relu_();
  }
  if (sae.options().architecture != sparse::Architecture::kTopK) {
    // jumprelu, gated, batchtopk family: the SAE's own inference encoding, transposed.
    at::Tensor dense = sae.Encode(x).t().contiguous();  // [d_sae, n]
    return features.defined() ? dense.index_select(0, features) : dense;
  }
  // TopK: the k largest pre-activations of each token over every feature, scattered.
  const at::Tensor h = at::addmm(p.b_enc, sae_in, p.W_enc);  // [n, d_sae]
  auto [values, indices] = h.topk(sae.options().k, 1, true, false);
  const int64_t k = indices.size(1);
  at::Tensor dense = at::zeros({sae.options().d_sae, n}, at::kFloat);
  const at::Tensor tokens = at::arange(n, at::kLong).unsqueeze(1).expand({n, k});
  dense.view({-1}).scatter_(0, (indices * n + tokens).flatten(), at::relu(values).flatten());
  return features.defined() ? dense.index_select(0, features) : dense;
}

absl::StatusOr<at::Tensor> LogitEffects(const model::Gpt2Weights& weights,
                                        const model::HookPoint& hook, int head_index,
                                        const at::Tensor& directions) {
  using model::HookKind;
  at::Tensor r = directions.to(at::kFloat);
  const int64_t D = weights.config.n_embd;
  switch (hook.kind) {
    case HookKind::kEmbed:
    case HookKind::kPosEmbed:
    case HookKind::kResidPre:
    case HookKind::kResidMid:
    case HookKind::kResidPost:
    case HookKind::kAttnOut:
    case HookKind::kMlpOut:
      break;
    case HookKind::kZ: {
      at::Tensor w_o = weights.blocks[hook.layer].attn_c_proj_weight;  // [H*dh, D]
      if (head_index >= 0) {
        const int64_t dh = D / weights.config.n_head;
        w_o = w_o.narrow(0, head_index * dh, dh);
      }
      r = at::matmul(r, w_o);
      break;
    }
    case HookKind::kMlpPost:
      r = at::matmul(r, weights.blocks[hook.layer].mlp_c_proj_weight);
      break;
    default:
      return absl::UnimplementedError(absl::StrCat(
          "hook ", hook.Name(),
          " does not write into the residual stream through a linear map; logit effects are "
          "defined for residual-stream hooks, attn.hook_z and mlp.hook_post"));
  }
  r = (r - r.mean(1, true)) * weights.ln_f_weight;
  at::Tensor logits = at::matmul(r, weights.lm_head.t());  // [n, V]
  return logits - logits.mean(1, true);
}

absl::StatusOr<FeatureReport> ComputeFeatureReport(const model::Gpt2Model& model,
                                                   const model::Gpt2Weights& weights,
                                                   const eval::SaeForEval& sae,
                                                   const at::Tensor& contexts,
                                                   const std::vector<int64_t>& features_in,
                                                   const FeaturePassOptions& options) {
  SAE_ASSIGN_OR_RETURN(model::HookPoint hook,
                       eval::CheckSaeFitsModel(sae, model.config(), "given"));
  if (contexts.dim() != 2 || contexts.size(0) == 0) {
    return absl::InvalidArgumentError("feature statistics need at least one context");
  }
  c10::InferenceMode guard;
  const eval::HookSite site(hook, sae.hook_head_index);
  const sparse::SparseAutoencoder sae_model(sae.options, sae.params);
  const int64_t d_sae = sae.options.d_sae;
  std::vector<int64_t> features = features_in;
  at::Tensor selection;  // undefined: all
  if (features.empty()) {
    for (int64_t f = 0; f < d_sae; ++f) features.push_back(f);
  } else {
    selection = at::tensor(features, at::kLong);
  }
  const int64_t F = static_cast<int64_t>(features.size());
  const int64_t N = contexts.size(0), T = contexts.size(1);
  int64_t per_batch = options.contexts_per_batch;
  if (per_batch <= 0) {
    // Only standard encodes the selected features alone; the others make every feature's row
    // before selecting: size by d_sae there.
    const int64_t rows = sae.options.architecture == sparse::Architecture::kStandard ? F : d_sae;
    per_batch = std::max<int64_t>(1, (int64_t{256} << 20) / (rows * T * 4));
    per_batch = std::min<int64_t>(per_batch, 64);
  }

  FeatureReport report;
  report.contexts = N;
  report.context_size = T;
  report.tokens = N * T;

  // The pass: forward to the hook, encoder, statistics.
  auto start = std::chrono::steady_clock::now();
  {
    FeatureCollector collector(features, T, options.collector);
    model::ForwardRequest request;
    request.capture.push_back(hook);
    const std::string name = hook.Name();
    for (int64_t lo = 0; lo < N; lo += per_batch) {
      const int64_t b = std::min(per_batch, N - lo);
      SAE_ASSIGN_OR_RETURN(model::ForwardResult result,
                           model.Forward(contexts.narrow(0, lo, b), request));
      const at::Tensor x = site.SaeInput(result.activations.at(name));
      collector.Add(EncodeFeatureMajor(sae_model, x, selection), lo);
      if (options.progress) options.progress(lo + b, N);
      if (options.stop && options.stop()) return absl::CancelledError("interrupted");
    }
    report.stats = collector.Finish();
  }
  report.pass_seconds = SecondsSince(start);

  // Logit effects, a chunk of features at a time ([chunk, V] logits).
  if (options.on_phase && options.logit_k > 0) options.on_phase("logit effects");
  start = std::chrono::steady_clock::now();
  const at::Tensor w_dec = sae.params.W_dec.to(at::kFloat);
  const at::Tensor w_dec_selected = selection.defined() ? w_dec.index_select(0, selection) : w_dec;
  if (options.logit_k > 0) {
    report.has_logits = true;
    report.raised.resize(F);
    report.lowered.resize(F);
    const int64_t k = std::min<int64_t>(options.logit_k, weights.config.vocab_size);
    absl::Status status;
    ForChunks(F, 512, [&](int64_t lo, int64_t n) {
      if (!status.ok()) return;
      absl::StatusOr<at::Tensor> logits =
          LogitEffects(weights, hook, sae.hook_head_index, w_dec_selected.narrow(0, lo, n));
      if (!logits.ok()) {
        status = logits.status();
        return;
      }
      auto [up_v, up_i] = logits->topk(k, 1, true, true);
      auto [down_v, down_i] = logits->topk(k, 1, false, true);
      const auto uv = up_v.accessor<float, 2>(), dv = down_v.accessor<float, 2>();
      const auto ui = up_i.accessor<int64_t, 2>(), di = down_i.accessor<int64_t, 2>();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < k; ++j) {
          report.raised[lo + i].push_back({static_cast<int32_t>(ui[i][j]), uv[i][j]});
          report.lowered[lo + i].push_back({static_cast<int32_t>(di[i][j]), dv[i][j]});
        }
      }
    });
    if (status.code() == absl::StatusCode::kUnimplemented) {
      report.has_logits = false;
      report.logits_note = std::string(status.message());
      report.raised.clear();
      report.lowered.clear();
    } else if (!status.ok()) {
      return status;
    }
  }
  report.logits_seconds = SecondsSince(start);

  if (options.stop && options.stop()) return absl::CancelledError("interrupted");
  // Nearest features by decoder cosine, against every feature of the SAE.
  if (options.on_phase && options.neighbours > 0) options.on_phase("decoder neighbours");
  start = std::chrono::steady_clock::now();
  report.neighbours.resize(F);
  const int64_t nk = std::min<int64_t>(options.neighbours, d_sae - 1);
  if (nk > 0) {
    const at::Tensor unit = w_dec / w_dec.norm(2, {1}, true).clamp_min(1e-12);
    const at::Tensor unit_selected =
        selection.defined() ? unit.index_select(0, selection) : unit;
    ForChunks(F, 1024, [&](int64_t lo, int64_t n) {
      at::Tensor sims = at::matmul(unit_selected.narrow(0, lo, n), unit.t());  // [n, d_sae]
      const at::Tensor self = at::tensor(
          std::vector<int64_t>(features.begin() + lo, features.begin() + lo + n), at::kLong);
      sims.view({-1}).index_fill_(0, at::arange(n, at::kLong) * d_sae + self, -3.0f);  // not itself
      auto [v, idx] = sims.topk(nk, 1, true, true);
      const auto va = v.accessor<float, 2>();
      const auto ia = idx.accessor<int64_t, 2>();
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < nk; ++j) report.neighbours[lo + i].emplace_back(ia[i][j], va[i][j]);
      }
    });
  }
  report.neighbours_seconds = SecondsSince(start);
  return report;
}

}  // namespace sae::features
