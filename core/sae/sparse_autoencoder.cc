#include "core/sae/sparse_autoencoder.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/sae/batch_topk.h"
#include "core/sae/gated.h"
#include "core/sae/jump_relu.h"
#include "core/sae/sparse_kernels.h"

namespace sae::sparse {
namespace {

// torch.nn.init.kaiming_uniform_ with its defaults (a = 0, fan_in, leaky_relu gain sqrt(2)).
at::Tensor KaimingUniform(int64_t rows, int64_t cols, at::Generator& gen) {
  const double bound = std::sqrt(6.0 / static_cast<double>(cols));  // fan_in = size(1)
  return at::empty({rows, cols}, at::kFloat).uniform_(-bound, bound, gen);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> SaeParameters::Named() const {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (auto [name, t] : {std::pair{"W_enc", W_enc}, std::pair{"b_enc", b_enc},
                         std::pair{"W_dec", W_dec}, std::pair{"b_dec", b_dec},
                         std::pair{"threshold", threshold}, std::pair{"r_mag", r_mag},
                         std::pair{"b_gate", b_gate}, std::pair{"b_mag", b_mag}}) {
    if (t.defined()) named.emplace_back(name, t);
  }
  return named;
}

std::vector<at::Tensor> SaeParameters::List() const {
  std::vector<at::Tensor> list;
  for (auto& [name, t] : Named()) list.push_back(t);
  return list;
}

SaeParameters SaeParameters::Clone() const {
  auto copy = [](const at::Tensor& t) { return t.defined() ? t.clone() : at::Tensor(); };
  return {copy(W_enc),  copy(b_enc), copy(W_dec), copy(b_dec),         copy(threshold),
          copy(r_mag),  copy(b_gate), copy(b_mag), copy(topk_threshold)};
}

StepBuffer::StepBuffer(int64_t d_in, int64_t d_sae) {
  Allocate({{"W_enc", {d_in, d_sae}},
            {"b_enc", {d_sae}},
            {"W_dec", {d_sae, d_in}},
            {"b_dec", {d_in}}},
           d_sae);
}

StepBuffer::StepBuffer(const SaeParameters& params) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (auto& [name, t] : params.Named()) shapes.emplace_back(name, t.sizes().vec());
  Allocate(shapes, params.W_dec.size(0));
}

void StepBuffer::Allocate(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                          int64_t d_sae) {
  gradient_numel_ = 0;
  for (auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    gradient_numel_ += n;
  }
  flat_ = at::zeros({gradient_numel_ + d_sae + kNumScalars}, at::kFloat);
  int64_t offset = 0;
  auto take = [&](const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    at::Tensor view = flat_.narrow(0, offset, n).view(shape);
    offset += n;
    return view;
  };
  for (auto& [name, shape] : shapes) {
    at::Tensor view = take(shape);
    gradients_.push_back(view);
    for (auto [key, member] : {std::pair{"W_enc", &W_enc}, std::pair{"b_enc", &b_enc},
                               std::pair{"W_dec", &W_dec}, std::pair{"b_dec", &b_dec},
                               std::pair{"threshold", &threshold}, std::pair{"r_mag", &r_mag},
                               std::pair{"b_gate", &b_gate}, std::pair{"b_mag", &b_mag}}) {
      if (name == key) *member = view;
    }
  }
  fired = take({d_sae});
  scalars = take({kNumScalars});
}

SparseAutoencoder::SparseAutoencoder(const SaeOptions& options, uint64_t seed,
                                     double jumprelu_init_threshold,
                                     std::optional<double> decoder_init_norm)
    : options_(options) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const int64_t D = options.d_in, S = options.d_sae;
  const Architecture a = options.architecture;
  params_.W_enc = KaimingUniform(D, S, gen);
  params_.W_dec = KaimingUniform(S, D, gen);
  params_.W_dec.div_(params_.W_dec.norm(2, {1}, /*keepdim=*/true));
  if (decoder_init_norm) params_.W_dec.mul_(*decoder_init_norm);
  if (a != Architecture::kStandard || decoder_init_norm) {
    params_.W_enc = params_.W_dec.t().contiguous();
  }
  if (a != Architecture::kGated) params_.b_enc = at::zeros({S}, at::kFloat);
  params_.b_dec = at::zeros({D}, at::kFloat);
  if (a == Architecture::kJumpReLU) {
    params_.threshold = at::full({S}, jumprelu_init_threshold, at::kFloat);
  }
  if (a == Architecture::kGated) {
    params_.r_mag = at::zeros({S}, at::kFloat);
    params_.b_gate = at::zeros({S}, at::kFloat);
    params_.b_mag = at::zeros({S}, at::kFloat);
  }
  if (IsBatchTopK(a)) params_.topk_threshold = at::zeros({}, at::kDouble);
}

SparseAutoencoder::SparseAutoencoder(const SaeOptions& options, SaeParameters params)
    : options_(options), params_(std::move(params)) {
  const int64_t D = options.d_in, S = options.d_sae;
  const Architecture a = options.architecture;
  TORCH_CHECK(params_.W_enc.sizes() == at::IntArrayRef({D, S}) &&
                  params_.W_dec.sizes() == at::IntArrayRef({S, D}) &&
                  params_.b_dec.sizes() == at::IntArrayRef({D}),
              "SAE parameters do not match d_in ", D, " and d_sae ", S);
  auto check_vector = [&](at::Tensor& t, bool wanted, const char* name) {
    if (!wanted) {
      t = at::Tensor();
      return;
    }
    TORCH_CHECK(t.defined() && t.sizes() == at::IntArrayRef({S}), "a ", ArchitectureName(a),
                " SAE needs ", name, " of shape [", S, "]");
    t = t.to(at::kFloat).contiguous();
  };
  check_vector(params_.b_enc, a != Architecture::kGated, "b_enc");
  check_vector(params_.threshold, a == Architecture::kJumpReLU, "threshold");
  check_vector(params_.r_mag, a == Architecture::kGated, "r_mag");
  check_vector(params_.b_gate, a == Architecture::kGated, "b_gate");
  check_vector(params_.b_mag, a == Architecture::kGated, "b_mag");
  for (at::Tensor* t : {&params_.W_enc, &params_.W_dec, &params_.b_dec}) {
    *t = t->to(at::kFloat).contiguous();
  }
  if (IsBatchTopK(a)) {
    params_.topk_threshold = params_.topk_threshold.defined()
                                 ? params_.topk_threshold.to(at::kDouble).reshape({}).clone()
                                 : at::zeros({}, at::kDouble);
  } else {
    params_.topk_threshold = at::Tensor();
  }
}

void SparseAutoencoder::NormalizeDecoderRows() {
  params_.W_dec.div_(params_.W_dec.norm(2, {1}, /*keepdim=*/true));
}

void SparseAutoencoder::RemoveGradientParallelToDecoder(at::Tensor& grad_W_dec) const {
  // One pass over the rows (no [S,D] temporaries); rows of zeros (latents without a gradient,
  // most of them in a sparse step) stay zero.
  TORCH_CHECK(grad_W_dec.is_contiguous() && grad_W_dec.sizes() == params_.W_dec.sizes(),
              "the decoder gradient must be a contiguous [d_sae, d_in] tensor");
  const int64_t S = params_.W_dec.size(0), D = params_.W_dec.size(1);
  const float* w = params_.W_dec.data_ptr<float>();
  float* g = grad_W_dec.data_ptr<float>();
  at::parallel_for(0, S, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const float parallel = VecDot(g + j * D, w + j * D, D);
      if (parallel != 0.0f) VecAxpy(-parallel, w + j * D, g + j * D, D);
    }
  });
}

ForwardPass SparseAutoencoder::BeginBatchForward(const at::Tensor& x_in) const {
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = options_.apply_b_dec_to_input;
  pass.sae_in = pass.b_dec_in_input ? pass.x - params_.b_dec : pass.x;
  pass.hidden_pre = at::addmm(params_.b_enc, pass.sae_in, params_.W_enc);
  return pass;
}

void SparseAutoencoder::FinishBatchForward(ForwardPass& pass,
                                           const BatchSelection& selection) const {
  BatchTopKFinishForward(params_, selection, sparse_step_max_density_, pass);
}

ForwardPass SparseAutoencoder::Forward(const at::Tensor& x_in, bool keep_hidden_pre) const {
  return ForwardImpl(x_in, keep_hidden_pre, sparse_step_max_density_);
}

ForwardPass SparseAutoencoder::ForwardImpl(const at::Tensor& x_in, bool keep_hidden_pre,
                                           double max_density) const {
  const Architecture a = options_.architecture;
  if (IsBatchTopK(a)) {
    ForwardPass pass = BeginBatchForward(x_in);
    const int64_t K = options_.k * pass.x.size(0);
    BatchTopKFinishForward(params_, SelectBatchTopK(BatchTopKCandidates(pass.hidden_pre, K), K),
                           max_density, pass);
    return pass;
  }
  const bool b_dec_in_input = options_.apply_b_dec_to_input;
  if (a == Architecture::kJumpReLU) {
    return JumpReLUForward(params_, x_in, b_dec_in_input, max_density);
  }
  if (a == Architecture::kGated) return GatedForward(params_, x_in, b_dec_in_input, max_density);
  ForwardPass pass;
  pass.x = x_in.to(at::kFloat).contiguous();
  pass.b_dec_in_input = b_dec_in_input;
  pass.sae_in = b_dec_in_input ? pass.x - params_.b_dec : pass.x;
  at::Tensor h = at::addmm(params_.b_enc, pass.sae_in, params_.W_enc);  // (B,S)
  if (options_.architecture == Architecture::kStandard) {
    const int64_t B = pass.x.size(0), S = options_.d_sae;
    if (max_density >= 0) {
      // The sparse step: the active entries (h > 0) by latent, when there are few enough.
      auto entries = std::make_shared<LatentEntries>();
      const double cap = std::min(max_density, 1.0) * static_cast<double>(B) * S;
      if (CollectLatentEntries(
              h, static_cast<int64_t>(cap), /*lower=*/nullptr, [](float, int64_t) { return true; },
              *entries)) {
        if (keep_hidden_pre) pass.hidden_pre = h;
        pass.x_hat = params_.b_dec.expand({B, options_.d_in}).clone();
        LatentEntriesCombine(params_.W_dec, *entries, entries->value.data(), pass.x_hat);
        pass.entries = std::move(entries);
        return pass;
      }
    }
    if (keep_hidden_pre) {
      pass.hidden_pre = h;
      pass.feature_acts = at::relu(h);
    } else {
      pass.feature_acts = h.relu_();
    }
    pass.x_hat = at::addmm(params_.b_dec, pass.feature_acts, params_.W_dec);
    return pass;
  }
  auto [values, indices] = h.topk(options_.k, /*dim=*/1, /*largest=*/true, /*sorted=*/false);
  pass.topk_values = at::relu(values).contiguous();
  pass.topk_indices = indices.contiguous();
  if (keep_hidden_pre) pass.hidden_pre = h;
  pass.x_hat = params_.b_dec.expand({pass.x.size(0), options_.d_in}).clone();
  SparseRowsCombine(params_.W_dec, pass.topk_indices, pass.topk_values, pass.x_hat);
  return pass;
}

at::Tensor SparseAutoencoder::MomentSums(const ForwardPass& pass) {
  return at::stack({pass.x.sum(0), (pass.x - pass.x_hat).sum(0)});
}

void SparseAutoencoder::Backward(const ForwardPass& pass, const BatchMoments& moments,
                                 const LossOptions& loss, StepBuffer& buffer) const {
  buffer.scalars.zero_();
  switch (options_.architecture) {
    case Architecture::kStandard:
      if (pass.entries) {
        BackwardStandardSparse(pass, moments, loss, buffer);
      } else {
        BackwardStandard(pass, moments, loss, buffer);
      }
      break;
    case Architecture::kTopK:
      BackwardTopK(pass, loss, buffer);
      break;
    case Architecture::kBatchTopK:
    case Architecture::kMatryoshkaBatchTopK:
      BatchTopKBackward(options_, params_, pass, loss, buffer);
      break;
    case Architecture::kJumpReLU:
      JumpReLUBackward(params_, pass, loss, buffer);
      break;
    case Architecture::kGated:
      GatedBackward(params_, pass, loss, buffer);
      break;
  }
  RecordReconstructionStats(pass, moments, buffer);
}

void SparseAutoencoder::RecordReconstructionStats(const ForwardPass& pass,
                                                  const BatchMoments& moments,
                                                  StepBuffer& buffer) const {
  // Explained variance per token: 1 - ||x - x_hat||^2 / ||x - mean_batch(x)||^2.
  at::Tensor l2 = (pass.x - pass.x_hat).pow(2).sum(1);
  at::Tensor variance = (pass.x - moments.x_mean).pow(2).sum(1);
  at::Tensor ev = 1 - l2 / variance;
  at::Tensor x_hat_norm = pass.x_hat.norm(2, {1});
  buffer.set_scalar(StepBuffer::kEvTokenSum, ev.sum().item<double>());
  buffer.set_scalar(StepBuffer::kEvSqTokenSum, ev.pow(2).sum().item<double>());
  buffer.set_scalar(StepBuffer::kL2NormTokenSum, x_hat_norm.sum().item<double>());
  buffer.set_scalar(StepBuffer::kL2RatioTokenSum,
                    (x_hat_norm / pass.x.norm(2, {1})).sum().item<double>());
  buffer.set_scalar(StepBuffer::kTokens, static_cast<double>(pass.x.size(0)));
}

void SparseAutoencoder::BackwardStandard(const ForwardPass& pass, const BatchMoments& moments,
                                         const LossOptions& loss, StepBuffer& buffer) const {
  const at::Tensor& f = pass.feature_acts;
  const int64_t B = pass.x.size(0), D = options_.d_in;
  const double BD = static_cast<double>(B) * static_cast<double>(D);

  // mse_elem = (x_hat - x)^2 / ||x - mean_batch(x)||  (row norm, not squared); mse = its mean.
  at::Tensor diff = pass.x_hat - pass.x;                                     // (B,D)
  at::Tensor x_centred_norm = (pass.x - moments.x_mean).norm(2, {1}, true);  // (B,1)
  at::Tensor mse_elem = diff.pow(2) / x_centred_norm;
  const double mse = mse_elem.mean().item<double>();

  // d mse / d x_hat, and dL/dh = (G W_dec^T + l1_coefficient / B) * 1[h > 0].
  at::Tensor G = diff * (2.0 / BD) / x_centred_norm;  // (B,D)
  at::Tensor dh = at::mm(G, params_.W_dec.t());       // (B,S)

  // One pass over the (B,S) activations: masks dh through the ReLU and gathers sum f (the L1
  // term; f >= 0 so |f| = f), the active count (L0) and each latent's firing count.
  double f_sum = 0;
  int64_t active_count = 0;
  {
    const int64_t S = options_.d_sae;
    const float l1_grad = static_cast<float>(loss.l1_coefficient / B);
    float* dhp = dh.data_ptr<float>();
    const float* fp = f.data_ptr<float>();
    const int threads = at::get_num_threads();
    std::vector<float> fired(static_cast<size_t>(threads) * S, 0.0f);
    std::vector<double> sums(threads, 0.0);
    std::vector<int64_t> counts(threads, 0);
    at::parallel_for(0, B, 16, [&](int64_t b0, int64_t b1) {
      const int t = at::get_thread_num();
      float* fired_t = fired.data() + static_cast<size_t>(t) * S;
      double sum = 0;
      int64_t count = 0;
      for (int64_t b = b0; b < b1; ++b) {
        const float* frow = fp + b * S;
        float* drow = dhp + b * S;
        float row_sum = 0;
        for (int64_t j = 0; j < S; ++j) {
          const float v = frow[j];
          if (v > 0.0f) {
            drow[j] += l1_grad;
            row_sum += v;
            ++count;
            fired_t[j] += 1.0f;
          } else {
            drow[j] = 0.0f;
          }
        }
        sum += row_sum;
      }
      sums[t] += sum;
      counts[t] += count;
    });
    float* out = buffer.fired.data_ptr<float>();
    std::fill(out, out + S, 0.0f);
    for (int t = 0; t < threads; ++t) {
      f_sum += sums[t];
      active_count += counts[t];
      const float* fired_t = fired.data() + static_cast<size_t>(t) * S;
      for (int64_t j = 0; j < S; ++j) out[j] += fired_t[j];
    }
  }
  const double l1_raw = f_sum / B;
  const double l1 = loss.l1_coefficient * l1_raw;
  at::mm_out(buffer.W_dec, f.t(), G);

  // Ghost gradients: dead latents, through exp of their pre-activations, reconstruct the
  // residual at half its norm; the loss is rescaled to the size of the MSE.
  double ghost = 0;
  if (loss.use_ghost_grads && loss.dead_mask.defined() && loss.dead_mask.any().item<bool>()) {
    TORCH_CHECK(pass.hidden_pre.defined(), "ghost gradients need the pre-activations");
    at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
    at::Tensor E = pass.hidden_pre.index_select(1, dead).exp();  // (B,Nd)
    at::Tensor W_dead = params_.W_dec.index_select(0, dead);     // (Nd,D)
    at::Tensor g0 = at::mm(E, W_dead);                           // (B,D)
    at::Tensor residual = -diff;
    at::Tensor scale =
        residual.norm(2, {1}, true) / (1e-6 + 2 * g0.norm(2, {1}, true));  // detached
    at::Tensor g = g0 * scale;
    at::Tensor residual_centred_norm = (residual - moments.residual_mean).norm(2, {1}, true);
    at::Tensor gap = g - residual;
    at::Tensor mg = gap.pow(2) / residual_centred_norm;
    at::Tensor rescale = mse_elem / (mg + 1e-6);  // detached
    ghost = (rescale * mg).mean().item<double>();
    at::Tensor dg0 = rescale * gap * (2.0 / BD) / residual_centred_norm * scale;  // (B,D)
    dh.index_add_(1, dead, at::mm(dg0, W_dead.t()) * E);
    buffer.W_dec.index_add_(0, dead, at::mm(E.t(), dg0));
  }

  at::mm_out(buffer.W_enc, pass.sae_in.t(), dh);
  at::sum_out(buffer.b_enc, dh, {0});
  // sae_in = x - b_dec, so b_dec's gradient through the encoder is -(sum_b dh_b) W_enc^T.
  at::sum_out(buffer.b_dec, G, {0});
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params_.W_enc, buffer.b_enc));

  buffer.set_scalar(StepBuffer::kL0TokenSum, static_cast<double>(active_count));
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, l1_raw);
  buffer.set_scalar(StepBuffer::kGhostSum, ghost);
  buffer.set_scalar(StepBuffer::kLossSum, mse + l1 + ghost);
}

// The sparse step of the standard SAE: the same loss and gradients as BackwardStandard, with the
// decoder gradient, the gradient into the latents and the encoder gradient over the active
// entries only (pass.entries), one latent at a time.
void SparseAutoencoder::BackwardStandardSparse(const ForwardPass& pass,
                                               const BatchMoments& moments,
                                               const LossOptions& loss, StepBuffer& buffer) const {
  const LatentEntries& entries = *pass.entries;
  const int64_t B = pass.x.size(0), D = options_.d_in;
  const double BD = static_cast<double>(B) * static_cast<double>(D);

  at::Tensor diff = pass.x_hat - pass.x;                                     // (B,D)
  at::Tensor x_centred_norm = (pass.x - moments.x_mean).norm(2, {1}, true);  // (B,1)
  at::Tensor mse_elem = diff.pow(2) / x_centred_norm;
  const double mse = mse_elem.mean().item<double>();
  at::Tensor G = (diff * (2.0 / BD) / x_centred_norm).contiguous();  // (B,D)

  // Per active latent j, over its entries (b, f): dh = G_b . W_dec_j + l1_coefficient / B,
  // W_dec grad row j = sum f G_b, W_enc grad column j = sum dh sae_in_b, b_enc grad j = sum dh.
  const float l1_grad = static_cast<float>(loss.l1_coefficient / B);
  const at::Tensor sae_in = pass.sae_in.contiguous();
  const float* gp = G.data_ptr<float>();
  const float* xp = sae_in.data_ptr<float>();
  const float* wp = params_.W_dec.data_ptr<float>();
  buffer.W_dec.zero_();
  float* gw = buffer.W_dec.data_ptr<float>();
  float* gb = buffer.b_enc.data_ptr<float>();
  float* fired = buffer.fired.data_ptr<float>();
  const int64_t* start = entries.start.data();
  const int32_t* token = entries.token.data();
  const float* value = entries.value.data();
  const int64_t nnz = entries.nnz();
  ForEachLatentColumn(at::Tensor(), buffer.W_enc, [&](int64_t j, const float*, float* col) {
    const int64_t e0 = start[j], e1 = start[j + 1];
    fired[j] = static_cast<float>(e1 - e0);
    double b_sum = 0;
    const float* w = wp + j * D;
    float* gw_j = gw + j * D;
    for (int64_t e = e0; e < e1; ++e) {
      if (e + 1 < nnz) {  // the next entry, of this latent or the next
        PrefetchRow(gp + token[e + 1] * D, D);
        PrefetchRow(xp + token[e + 1] * D, D);
      }
      const float* g_b = gp + token[e] * D;
      const float dh = VecDotAxpy(g_b, w, value[e], gw_j, D) + l1_grad;
      VecAxpy(dh, xp + token[e] * D, col, D);
      b_sum += dh;
    }
    gb[j] = static_cast<float>(b_sum);
  });
  double f_sum = 0;
  for (float v : entries.value) f_sum += v;
  const double l1_raw = f_sum / B;
  const double l1 = loss.l1_coefficient * l1_raw;

  // Ghost gradients, exactly as BackwardStandard: dense over the dead latents' columns.
  double ghost = 0;
  if (loss.use_ghost_grads && loss.dead_mask.defined() && loss.dead_mask.any().item<bool>()) {
    TORCH_CHECK(pass.hidden_pre.defined(), "ghost gradients need the pre-activations");
    at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
    at::Tensor E = pass.hidden_pre.index_select(1, dead).exp();  // (B,Nd)
    at::Tensor W_dead = params_.W_dec.index_select(0, dead);     // (Nd,D)
    at::Tensor g0 = at::mm(E, W_dead);                           // (B,D)
    at::Tensor residual = -diff;
    at::Tensor scale =
        residual.norm(2, {1}, true) / (1e-6 + 2 * g0.norm(2, {1}, true));  // detached
    at::Tensor g = g0 * scale;
    at::Tensor residual_centred_norm = (residual - moments.residual_mean).norm(2, {1}, true);
    at::Tensor gap = g - residual;
    at::Tensor mg = gap.pow(2) / residual_centred_norm;
    at::Tensor rescale = mse_elem / (mg + 1e-6);  // detached
    ghost = (rescale * mg).mean().item<double>();
    at::Tensor dg0 = rescale * gap * (2.0 / BD) / residual_centred_norm * scale;  // (B,D)
    at::Tensor dh_dead = at::mm(dg0, W_dead.t()) * E;                             // (B,Nd)
    buffer.W_enc.index_add_(1, dead, at::mm(sae_in.t(), dh_dead));
    buffer.b_enc.index_add_(0, dead, dh_dead.sum(0));
    buffer.W_dec.index_add_(0, dead, at::mm(E.t(), dg0));
  }

  at::sum_out(buffer.b_dec, G, {0});
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params_.W_enc, buffer.b_enc));

  buffer.set_scalar(StepBuffer::kL0TokenSum, static_cast<double>(entries.nnz()));
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, l1_raw);
  buffer.set_scalar(StepBuffer::kGhostSum, ghost);
  buffer.set_scalar(StepBuffer::kLossSum, mse + l1 + ghost);
}

void SparseAutoencoder::BackwardTopK(const ForwardPass& pass, const LossOptions& loss,
                                     StepBuffer& buffer) const {
  const int64_t B = pass.x.size(0), D = options_.d_in;
  const at::Tensor& idx = pass.topk_indices;
  const at::Tensor& vals = pass.topk_values;

  // mse = mean over tokens of ||x_hat - x||^2 (SAELens's TopK loss).
  at::Tensor diff = pass.x_hat - pass.x;
  const double mse = diff.pow(2).sum(1).mean().item<double>();
  at::Tensor G = diff * (2.0 / B);
  at::Tensor dvals = SparseRowsDot(params_.W_dec, idx, G) * (vals > 0);  // through the ReLU
  buffer.W_dec.zero_();
  SparseRowsAccumulate(idx, vals, G, buffer.W_dec);
  at::sum_out(buffer.b_dec, G, {0});

  // AuxK: the top k_aux pre-activations among dead latents reconstruct the residual.
  double aux = 0;
  at::Tensor aux_idx, aux_dvals;
  if (loss.dead_mask.defined() && loss.dead_mask.any().item<bool>()) {
    TORCH_CHECK(pass.hidden_pre.defined(), "AuxK needs the pre-activations");
    at::Tensor dead = loss.dead_mask.nonzero().squeeze(1);
    const int64_t n_dead = dead.numel();
    const int64_t half = std::max<int64_t>(D / 2, 1);
    const int64_t k_aux = std::min(half, n_dead);
    const double scale = std::min(static_cast<double>(n_dead) / half, 1.0);
    auto [aux_vals, local] = pass.hidden_pre.index_select(1, dead).topk(k_aux, 1, true, false);
    aux_vals = aux_vals.contiguous();
    aux_idx = dead.index_select(0, local.flatten()).view({B, k_aux});
    at::Tensor recons = params_.b_dec.expand({B, D}).clone();
    SparseRowsCombine(params_.W_dec, aux_idx, aux_vals, recons);
    at::Tensor gap = recons + diff;  // recons - (x - x_hat), the residual detached
    const double coefficient = loss.aux_k_coefficient * scale;
    aux = coefficient * gap.pow(2).sum(1).mean().item<double>();
    at::Tensor Ga = gap * (2.0 * coefficient / B);
    SparseRowsAccumulate(aux_idx, aux_vals, Ga, buffer.W_dec);
    buffer.b_dec.add_(Ga.sum(0));
    aux_dvals = SparseRowsDot(params_.W_dec, aux_idx, Ga);
  }

  buffer.W_enc.zero_();
  SparseColumnsAccumulate(pass.sae_in, idx, dvals, buffer.W_enc);
  buffer.b_enc.zero_();
  buffer.b_enc.index_add_(0, idx.flatten(), dvals.flatten());
  if (aux_idx.defined()) {
    SparseColumnsAccumulate(pass.sae_in, aux_idx, aux_dvals, buffer.W_enc);
    buffer.b_enc.index_add_(0, aux_idx.flatten(), aux_dvals.flatten());
  }
  if (pass.b_dec_in_input) buffer.b_dec.sub_(at::mv(params_.W_enc, buffer.b_enc));

  at::Tensor active = (vals > 0).to(at::kFloat);
  buffer.fired.zero_();
  buffer.fired.index_add_(0, idx.flatten(), active.flatten());
  buffer.set_scalar(StepBuffer::kL0TokenSum, active.sum().item<double>());
  buffer.set_scalar(StepBuffer::kMseSum, mse);
  buffer.set_scalar(StepBuffer::kL1Sum, vals.sum().item<double>() / B);
  buffer.set_scalar(StepBuffer::kAuxSum, aux);
  buffer.set_scalar(StepBuffer::kLossSum, mse + aux);
}

at::Tensor SparseAutoencoder::InputScale(const at::Tensor& x) const {
  if (options_.normalize_activations != config::NormalizeActivations::kConstantNormRescale) {
    return at::Tensor();
  }
  // SAELens 6's run_time_activation_norm_fn_in: sqrt(d_in) / ||x|| per activation.
  return std::sqrt(static_cast<double>(options_.d_in)) / x.to(at::kFloat).norm(2, {1}, true);
}

at::Tensor SparseAutoencoder::Encode(const at::Tensor& x_in) const {
  const at::Tensor scale = InputScale(x_in);
  return EncodeScaled(scale.defined() ? x_in.to(at::kFloat) * scale : x_in);
}

at::Tensor SparseAutoencoder::EncodeScaled(const at::Tensor& x_in) const {
  const Architecture a = options_.architecture;
  if (a == Architecture::kGated) {
    return GatedForward(params_, x_in, options_.apply_b_dec_to_input).feature_acts;
  }
  at::Tensor x = x_in.to(at::kFloat);
  at::Tensor h = at::addmm(params_.b_enc, options_.apply_b_dec_to_input ? x - params_.b_dec : x,
                           params_.W_enc);
  if (a == Architecture::kStandard) return h.relu_();
  if (a == Architecture::kJumpReLU) return at::relu(h) * (h > params_.threshold);
  if (IsBatchTopK(a)) return at::relu(h) * (h > params_.topk_threshold.item<double>());
  auto [values, indices] = h.topk(options_.k, 1, true, false);
  return at::zeros_like(h).scatter_(1, indices, at::relu(values));
}

ForwardPass SparseAutoencoder::Infer(const at::Tensor& x_in) const {
  const at::Tensor scale = InputScale(x_in);
  const at::Tensor x = scale.defined() ? x_in.to(at::kFloat) * scale : x_in;
  const Architecture a = options_.architecture;
  ForwardPass pass;
  if (a == Architecture::kStandard || a == Architecture::kTopK) {
    pass = ForwardImpl(x, false, /*max_density=*/-1);  // evaluations read dense feature_acts
  } else {
    pass.x = x.to(at::kFloat).contiguous();
    pass.feature_acts = EncodeScaled(pass.x);
    pass.x_hat = at::addmm(params_.b_dec, pass.feature_acts, params_.W_dec);
  }
  if (scale.defined()) {  // back to the caller's activations (run_time_activation_norm_fn_out)
    pass.x = x_in.to(at::kFloat).contiguous();
    pass.x_hat = pass.x_hat / scale;
  }
  return pass;
}

at::Tensor SparseAutoencoder::Reconstruct(const at::Tensor& x_in) const {
  const at::Tensor scale = InputScale(x_in);
  const at::Tensor x = scale.defined() ? x_in.to(at::kFloat) * scale : x_in;
  at::Tensor x_hat = options_.architecture == Architecture::kTopK
                         ? Forward(x, false).x_hat
                         : at::addmm(params_.b_dec, EncodeScaled(x), params_.W_dec);
  return scale.defined() ? x_hat / scale : x_hat;
}

}  // namespace sae::sparse
