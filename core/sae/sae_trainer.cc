#include "core/sae/sae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/io/tensor_io.h"
#include "core/sae/batch_topk.h"
#include "core/sae/geometric_median.h"
#include "core/sae/lr_schedule.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

namespace sae::sparse {
namespace {

absl::Status TorchError(const c10::Error& e, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace()));
}

}  // namespace

SaeTrainer::SaeTrainer(const TrainerOptions& options, Collective* collective)
    : SaeTrainer(options,
                 SparseAutoencoder(options.sae, options.seed, options.jumprelu_init_threshold,
                                   options.decoder_init_norm)
                     .params(),
                 collective) {}

SaeTrainer::SaeTrainer(const TrainerOptions& options, SaeParameters params, Collective* collective)
    : options_(options),
      collective_(collective != nullptr ? collective : &single_),
      sae_(options.sae, std::move(params)),
      adam_(sae_.params().List(), options.adam_beta1, options.adam_beta2),
      buffer_(sae_.params()),
      generator_(at::detail::createCPUGenerator(options.seed + 1)) {
  passes_since_fired_ = at::zeros({options.sae.d_sae}, at::kLong);
  act_freq_scores_ = at::zeros({options.sae.d_sae}, at::kDouble);
  last_window_sparsity_ = at::zeros({options.sae.d_sae}, at::kFloat);
}

absl::Status SaeTrainer::Reduce(at::Tensor& t) {
  if (collective_->world_size() == 1) return absl::OkStatus();
  return collective_->AllReduceSum(t);
}

bool SaeTrainer::NeedsActivationScale() const {
  return options_.sae.normalize_activations ==
             config::NormalizeActivations::kExpectedAverageOnlyIn &&
         !(activation_scale_ > 0);
}

absl::Status SaeTrainer::EstimateActivationScale(const BatchSource& source, int64_t batches) {
  if (!NeedsActivationScale()) return absl::OkStatus();
  for (int64_t i = 0; i < batches; ++i) {
    SAE_ASSIGN_OR_RETURN(at::Tensor b, source());
    SAE_RETURN_IF_ERROR(AddToActivationScaleEstimate(b));
  }
  return FinishActivationScaleEstimate(batches);
}

absl::Status SaeTrainer::AddToActivationScaleEstimate(const at::Tensor& batch) {
  if (!NeedsActivationScale()) return absl::OkStatus();
  try {
    // [sum of norms, count] in float64 over this rank's batches.
    if (!norm_totals_.defined()) norm_totals_ = at::zeros({2}, at::kDouble);
    at::Tensor norms = batch.to(at::kDouble).reshape({-1, options_.sae.d_in}).norm(2, {1});
    norm_totals_[0] += norms.sum();
    norm_totals_[1] += norms.numel();
  } catch (const c10::Error& e) {
    return TorchError(e, "estimating the activation norm");
  }
  return absl::OkStatus();
}

absl::Status SaeTrainer::FinishActivationScaleEstimate(int64_t batches) {
  if (!NeedsActivationScale()) return absl::OkStatus();
  try {
    at::Tensor totals = norm_totals_.defined() ? norm_totals_ : at::zeros({2}, at::kDouble);
    norm_totals_ = at::Tensor();
    SAE_RETURN_IF_ERROR(Reduce(totals));  // over the group
    const double mean_norm = totals[0].item<double>() / std::max(totals[1].item<double>(), 1.0);
    if (!(mean_norm > 0) || !std::isfinite(mean_norm)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "normalize_activations expected_average_only_in: the mean activation norm over ",
          batches, " batches is ", mean_norm, "; the hook's activations cannot be scaled"));
    }
    activation_scale_ = std::sqrt(static_cast<double>(options_.sae.d_in)) / mean_norm;
  } catch (const c10::Error& e) {
    return TorchError(e, "estimating the activation norm");
  }
  return absl::OkStatus();
}

at::Tensor SaeTrainer::TrainingInput(const at::Tensor& x) const {
  switch (options_.sae.normalize_activations) {
    case config::NormalizeActivations::kExpectedAverageOnlyIn:
      return x.to(at::kFloat) * activation_scale_;
    case config::NormalizeActivations::kConstantNormRescale:
      return x.to(at::kFloat) * sae_.InputScale(x);
    case config::NormalizeActivations::kNone:
      break;
  }
  return x;
}

SaeParameters SaeTrainer::InferenceParameters() const {
  const SaeParameters& p = sae_.params();
  const bool scaled = options_.sae.normalize_activations ==
                          config::NormalizeActivations::kExpectedAverageOnlyIn &&
                      activation_scale_ > 0;
  const bool unapplied = !options_.sae.apply_b_dec_to_input;
  if (!scaled && !unapplied) return p;
  SaeParameters folded = p.Clone();
  if (unapplied) {
    // x W_enc + b_enc = (x - b_dec) W_enc + (b_enc + b_dec W_enc); gated shifts its gate and
    // magnitude biases the same way. Unchanged by the scale fold below: (b_dec / s)(W_enc s).
    const at::Tensor shift = at::mv(p.W_enc.t(), p.b_dec);  // [d_sae]
    if (folded.b_gate.defined()) {
      folded.b_gate.add_(shift);
      folded.b_mag.add_(at::mv((p.W_enc * p.r_mag.exp()).t(), p.b_dec));
    } else {
      folded.b_enc.add_(shift);
    }
  }
  if (scaled) {
    folded.W_enc.mul_(activation_scale_);
    folded.W_dec.div_(activation_scale_);
    folded.b_dec.div_(activation_scale_);
  }
  return folded;
}

SaeOptions SaeTrainer::InferenceOptions() const {
  SaeOptions o = options_.sae;
  if (o.normalize_activations == config::NormalizeActivations::kExpectedAverageOnlyIn) {
    o.normalize_activations = config::NormalizeActivations::kNone;
  }
  o.apply_b_dec_to_input = true;  // folded into the biases by InferenceParameters
  return o;
}

absl::Status SaeTrainer::InitializeDecoderBias(const at::Tensor& sample) {
  if (NeedsActivationScale()) {
    return absl::FailedPreconditionError(
        "normalize_activations expected_average_only_in: estimate the activation scale before "
        "initialising b_dec");
  }
  try {
    at::Tensor b_dec = sae_.params().b_dec;
    if (collective_->rank() == 0) {
      at::Tensor x = TrainingInput(sample.to(at::kFloat).reshape({-1, options_.sae.d_in}));
      switch (options_.b_dec_init) {
        case BDecInit::kGeometricMedian:
          b_dec.copy_(GeometricMedian(x).median);
          break;
        case BDecInit::kMean:
          b_dec.copy_(x.mean(0));
          break;
        case BDecInit::kZeros:
          b_dec.zero_();
          break;
      }
    }
    if (collective_->world_size() > 1) {
      SAE_RETURN_IF_ERROR(collective_->Broadcast(b_dec, 0));
    }
  } catch (const c10::Error& e) {
    return TorchError(e, "initialising b_dec");
  }
  return absl::OkStatus();
}

at::Tensor SaeTrainer::DeadMask() const {
  if (options_.sae.architecture == Architecture::kTopK) {
    // Dead after dead_tokens_threshold tokens without firing (counted in global tokens).
    const int64_t steps =
        std::max<int64_t>(1, (options_.dead_tokens_threshold + options_.train_batch_size - 1) /
                                 std::max<int64_t>(options_.train_batch_size, 1));
    return passes_since_fired_ >= steps;
  }
  return passes_since_fired_ > options_.dead_feature_window;
}

at::Tensor SaeTrainer::FeatureSparsity() const {
  if (window_tokens_ == 0) return last_window_sparsity_;
  return (act_freq_scores_ / static_cast<double>(window_tokens_)).to(at::kFloat);
}

SparsityMetrics SaeTrainer::WindowMetrics() const {
  SparsityMetrics m;
  at::Tensor sparsity =
      act_freq_scores_ / static_cast<double>(std::max<int64_t>(window_tokens_, 1));
  m.mean_log10_feature_sparsity = at::log10(sparsity + 1e-10).mean().item<double>();
  m.below_1e5 = (sparsity < 1e-5).sum().item<int64_t>();
  m.below_1e6 = (sparsity < 1e-6).sum().item<int64_t>();
  m.dead_by_threshold = (sparsity < options_.dead_feature_threshold).sum().item<int64_t>();
  // Bin i holds [-10 + 0.5 i, -9.5 + 0.5 i); 0 (every token) goes into the last bin.
  at::Tensor bins = at::floor((at::log10(sparsity.to(at::kDouble) + 1e-10) + 10.0) * 2.0)
                        .clamp(0, SparsityMetrics::kDensityBins - 1)
                        .to(at::kLong);
  at::Tensor counts = at::bincount(bins.flatten(), {}, SparsityMetrics::kDensityBins);
  m.log10_density_histogram.assign(counts.data_ptr<int64_t>(),
                                   counts.data_ptr<int64_t>() + SparsityMetrics::kDensityBins);
  return m;
}

absl::StatusOr<int64_t> SaeTrainer::ResampleDeadFeatures(const BatchSource& source) {
  // Dead: fired on fewer than dead_feature_threshold of the window's tokens (the seed's rule).
  const at::Tensor below_threshold =
      act_freq_scores_ / static_cast<double>(std::max<int64_t>(window_tokens_, 1)) <
      options_.dead_feature_threshold;
  at::Tensor dead = below_threshold.nonzero().squeeze(1);
  const int64_t n_dead = dead.numel();
  if (n_dead == 0) return 0;
  SaeParameters& p = sae_.params();
  if (collective_->rank() == 0) {
    if (!source) {
      return absl::FailedPreconditionError("resampling dead features needs a batch source");
    }
    std::vector<at::Tensor> batches;
    for (int64_t i = 0; i < options_.resample_batches; ++i) {
      SAE_ASSIGN_OR_RETURN(at::Tensor b, source());
      batches.push_back(TrainingInput(b.to(at::kFloat)));
    }
    at::Tensor inputs = at::cat(batches);  // (N,D)
    // Each dead feature takes one input, drawn with probability proportional to the square of
    // the SAE's reconstruction loss on it (Anthropic, "Towards Monosemanticity").
    at::Tensor loss = (inputs - sae_.Reconstruct(inputs)).pow(2).sum(1);
    at::Tensor weights = loss.pow(2).to(at::kDouble);
    if (!(weights.sum().item<double>() > 0)) weights = at::ones_like(weights);
    at::Tensor chosen =
        at::multinomial(weights, n_dead, /*replacement=*/n_dead > inputs.size(0), generator_);
    at::Tensor directions = inputs.index_select(0, chosen) - p.b_dec;
    directions = directions / directions.norm(2, {1}, true).clamp_min(1e-12);
    at::Tensor alive = below_threshold.logical_not().nonzero().squeeze(1);
    double mean_alive_norm =
        alive.numel() > 0 ? p.W_enc.index_select(1, alive).norm(2, {0}).mean().item<double>() : 1.0;
    p.W_dec.index_copy_(0, dead, directions);
    p.W_enc.index_copy_(1, dead,
                        directions.t() * (options_.feature_reinit_scale * mean_alive_norm));
    p.b_enc.index_fill_(0, dead, 0);
    // Adam's moments of every resampled parameter start again from zero.
    adam_.exp_avg(0).index_fill_(1, dead, 0);
    adam_.exp_avg_sq(0).index_fill_(1, dead, 0);
    adam_.exp_avg(1).index_fill_(0, dead, 0);
    adam_.exp_avg_sq(1).index_fill_(0, dead, 0);
    adam_.exp_avg(2).index_fill_(0, dead, 0);
    adam_.exp_avg_sq(2).index_fill_(0, dead, 0);
  }
  if (collective_->world_size() > 1) {
    for (at::Tensor* t : {&p.W_enc, &p.b_enc, &p.W_dec}) {
      SAE_RETURN_IF_ERROR(collective_->Broadcast(*t, 0));
    }
    for (size_t i = 0; i < 3; ++i) {
      SAE_RETURN_IF_ERROR(collective_->Broadcast(adam_.exp_avg(i), 0));
      SAE_RETURN_IF_ERROR(collective_->Broadcast(adam_.exp_avg_sq(i), 0));
    }
  }
  return n_dead;
}

LossOptions SaeTrainer::StepLossOptions() const {
  LossOptions loss;
  loss.l1_coefficient = L1CoefficientAt(options_, step_);
  loss.use_ghost_grads = options_.use_ghost_grads;
  loss.aux_k_coefficient = options_.aux_k_coefficient;
  loss.l0_coefficient = L0CoefficientAt(options_, step_);
  loss.jumprelu_bandwidth = options_.jumprelu_bandwidth;
  loss.jumprelu_sparsity_loss = options_.jumprelu_sparsity_loss;
  loss.jumprelu_tanh_scale = options_.jumprelu_tanh_scale;
  loss.target_l0 = options_.target_l0;
  loss.jumprelu_ste_to_input = options_.jumprelu_ste_to_input;
  loss.pre_act_loss_coefficient = options_.pre_act_loss_coefficient;
  return loss;
}

absl::StatusOr<ForwardPass> SaeTrainer::GroupBatchForward(const at::Tensor& batch) {
  // The global batch size, then every rank's k * B candidates side by side, summed into one
  // buffer (each slot is written by one rank): every rank selects from the same values.
  ForwardPass pass = sae_.BeginBatchForward(batch);
  at::Tensor tokens = at::full({1}, static_cast<float>(pass.x.size(0)));
  SAE_RETURN_IF_ERROR(Reduce(tokens));
  const int64_t K = options_.sae.k * static_cast<int64_t>(tokens.item<double>());
  const int world = collective_->world_size();
  at::Tensor all = at::zeros({world * K}, at::kFloat);
  all.narrow(0, collective_->rank() * K, K).copy_(BatchTopKCandidates(pass.hidden_pre, K));
  SAE_RETURN_IF_ERROR(Reduce(all));
  sae_.FinishBatchForward(pass, SelectBatchTopK(all, K));
  return pass;
}

absl::StatusOr<StepMetrics> SaeTrainer::Step(const at::Tensor& activations,
                                             const BatchSource& resample_source) {
  const int64_t D = options_.sae.d_in;
  if (!activations.defined() || activations.dim() != 2 || activations.size(1) != D ||
      activations.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("a training batch must be [tokens, ", D, "]"));
  }
  if (NeedsActivationScale()) {
    return absl::FailedPreconditionError(
        "normalize_activations expected_average_only_in: estimate the activation scale before "
        "the first step (SaeTrainer::EstimateActivationScale)");
  }
  const at::Tensor batch = TrainingInput(activations);
  StepMetrics metrics;
  try {
    sae_.NormalizeDecoderRows();

    if (options_.feature_sampling_window > 0 &&
        (step_ + 1) % options_.feature_sampling_window == 0) {
      SparsityMetrics sparsity = WindowMetrics();
      if (options_.resample_dead_features) {
        SAE_ASSIGN_OR_RETURN(sparsity.resampled, ResampleDeadFeatures(resample_source));
        sae_.NormalizeDecoderRows();
      }
      metrics.sparsity = sparsity;
      last_window_sparsity_ = FeatureSparsity();
      act_freq_scores_.zero_();
      window_tokens_ = 0;
    }

    const Architecture architecture = options_.sae.architecture;
    // jumprelu: the threshold stays >= 0 (SAELens 6 projects it before every step).
    if (architecture == Architecture::kJumpReLU) sae_.params().threshold.clamp_min_(0);

    const double lr = LearningRateAt(options_, step_);
    LossOptions loss = StepLossOptions();
    loss.dead_mask = DeadMask();
    const int64_t n_dead = loss.dead_mask.sum().item<int64_t>();
    const bool keep_hidden_pre =
        n_dead > 0 && (architecture == Architecture::kTopK || loss.use_ghost_grads);

    ForwardPass pass;
    if (IsBatchTopK(architecture) && collective_->world_size() > 1) {
      SAE_ASSIGN_OR_RETURN(pass, GroupBatchForward(batch));
    } else {
      pass = sae_.Forward(batch, keep_hidden_pre);
    }
    if (IsBatchTopK(architecture)) {
      at::Tensor& running = sae_.params().topk_threshold;
      running.fill_(UpdatedTopKThreshold(running.item<double>(), pass.selection,
                                         options_.topk_threshold_lr));
    }

    // Batch means over the global batch (the normalised MSE and ghost loss depend on them).
    at::Tensor sums = at::cat({SparseAutoencoder::MomentSums(pass).flatten(),
                               at::full({1}, static_cast<float>(pass.x.size(0)))});
    SAE_RETURN_IF_ERROR(Reduce(sums));
    const double global_tokens = sums[2 * D].item<double>();
    BatchMoments moments{sums.narrow(0, 0, D) / global_tokens,
                         sums.narrow(0, D, D) / global_tokens};

    sae_.Backward(pass, moments, loss, buffer_);
    SAE_RETURN_IF_ERROR(Reduce(buffer_.flat()));
    const double world = collective_->world_size();
    if (world > 1) buffer_.gradient_span().div_(world);

    // Dead-feature counters and feature frequencies, from the global firing counts.
    at::Tensor fired = buffer_.fired > 0;
    passes_since_fired_.add_(1).masked_fill_(fired, 0);
    act_freq_scores_.add_(buffer_.fired.to(at::kDouble));
    window_tokens_ += static_cast<int64_t>(global_tokens);

    at::Tensor grad_W_dec = buffer_.W_dec;
    sae_.RemoveGradientParallelToDecoder(grad_W_dec);
    adam_.Step(sae_.params().List(), buffer_.gradients(), lr);
    ++step_;
    tokens_seen_ += static_cast<int64_t>(global_tokens);

    const double n = global_tokens;
    metrics.step = step_;
    metrics.tokens = tokens_seen_;
    metrics.learning_rate = lr;
    metrics.l1_coefficient = loss.l1_coefficient;
    metrics.l0_coefficient = loss.l0_coefficient;
    metrics.overall_loss = buffer_.scalar(StepBuffer::kLossSum) / world;
    metrics.mse_loss = buffer_.scalar(StepBuffer::kMseSum) / world;
    metrics.l1_loss = buffer_.scalar(StepBuffer::kL1Sum) / world;
    metrics.ghost_grad_loss = buffer_.scalar(StepBuffer::kGhostSum) / world;
    metrics.aux_loss = buffer_.scalar(StepBuffer::kAuxSum) / world;
    metrics.l0_loss = buffer_.scalar(StepBuffer::kL0LossSum) / world;
    metrics.pre_act_loss = buffer_.scalar(StepBuffer::kPreActSum) / world;
    metrics.inner_mse_loss = buffer_.scalar(StepBuffer::kInnerMseSum) / world;
    if (IsBatchTopK(architecture)) {
      metrics.topk_threshold = sae_.params().topk_threshold.item<double>();
    }
    metrics.l0 = buffer_.scalar(StepBuffer::kL0TokenSum) / n;
    metrics.explained_variance = buffer_.scalar(StepBuffer::kEvTokenSum) / n;
    const double ev_sq = buffer_.scalar(StepBuffer::kEvSqTokenSum);
    metrics.explained_variance_std =
        n > 1 ? std::sqrt(std::max(
                    0.0, (ev_sq - n * metrics.explained_variance * metrics.explained_variance) /
                             (n - 1)))
              : 0.0;
    metrics.l2_norm = buffer_.scalar(StepBuffer::kL2NormTokenSum) / n;
    metrics.l2_ratio = buffer_.scalar(StepBuffer::kL2RatioTokenSum) / n;
    metrics.dead_features = n_dead;
    metrics.mean_passes_since_fired = passes_since_fired_.to(at::kDouble).mean().item<double>();
  } catch (const c10::Error& e) {
    return TorchError(e, "SAE training step failed");
  }
  return metrics;
}

absl::Status SaeTrainer::SaveState(const std::string& dir,
                                   const std::map<std::string, std::string>& extra) const {
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));
  const SaeParameters& p = sae_.params();
  Adam& adam = const_cast<Adam&>(adam_);
  io::NamedTensors tensors;
  const auto named = p.Named();
  for (const auto& [name, t] : named) tensors.emplace_back(name, t);
  for (size_t i = 0; i < adam.size(); ++i) {
    tensors.emplace_back(absl::StrCat("adam.exp_avg.", named[i].first), adam.exp_avg(i));
    tensors.emplace_back(absl::StrCat("adam.exp_avg_sq.", named[i].first), adam.exp_avg_sq(i));
  }
  if (p.topk_threshold.defined()) tensors.emplace_back("topk_threshold", p.topk_threshold);
  tensors.emplace_back("passes_since_fired", passes_since_fired_);
  tensors.emplace_back("act_freq_scores", act_freq_scores_);
  tensors.emplace_back("last_window_sparsity", last_window_sparsity_);
  tensors.emplace_back("rng_state", generator_.get_state());
  SAE_RETURN_IF_ERROR(io::SaveTensors(dir + "/state.safetensors", tensors));

  nlohmann::json j;
  j["format"] = "sae-service training state v1";
  j["architecture"] = std::string(ArchitectureName(options_.sae.architecture));
  j["d_in"] = options_.sae.d_in;
  j["d_sae"] = options_.sae.d_sae;
  j["step"] = step_;
  j["tokens_seen"] = tokens_seen_;
  j["adam_step"] = adam_.step();
  j["window_tokens"] = window_tokens_;
  if (activation_scale_ > 0) j["activation_scale"] = activation_scale_;
  nlohmann::json ex = nlohmann::json::object();
  for (const auto& [k, v] : extra) ex[k] = absl::Base64Escape(v);
  j["extra_base64"] = ex;
  return WriteFileAtomically(dir + "/state.json", j.dump(2) + "\n");
}

absl::StatusOr<std::map<std::string, std::string>> SaeTrainer::LoadState(const std::string& dir) {
  SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/state.json"));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("step")) {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/state.json is not a training state"));
  }
  if (j.value("architecture", "") != ArchitectureName(options_.sae.architecture) ||
      j.value("d_in", int64_t{-1}) != options_.sae.d_in ||
      j.value("d_sae", int64_t{-1}) != options_.sae.d_sae) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", dir, " holds a ", j.value("architecture", "?"), " SAE with d_in ",
        j.value("d_in", int64_t{-1}), " and d_sae ", j.value("d_sae", int64_t{-1}),
        "; this run has ", ArchitectureName(options_.sae.architecture), " with d_in ",
        options_.sae.d_in, " and d_sae ", options_.sae.d_sae));
  }
  SAE_ASSIGN_OR_RETURN(auto tensors, io::LoadTensors(dir + "/state.safetensors"));
  auto get = [&](const std::string& name) -> absl::StatusOr<at::Tensor> {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/state.safetensors lacks tensor '", name, "'"));
    }
    return it->second;
  };
  SaeParameters& p = sae_.params();
  const auto named = p.Named();
  for (size_t i = 0; i < named.size(); ++i) {
    const std::string& name = named[i].first;
    SAE_ASSIGN_OR_RETURN(at::Tensor t, get(name));
    if (t.sizes() != named[i].second.sizes()) {
      return absl::FailedPreconditionError(
          absl::StrCat("checkpoint tensor ", name, " has the wrong shape"));
    }
    named[i].second.copy_(t);
    SAE_ASSIGN_OR_RETURN(at::Tensor m, get(absl::StrCat("adam.exp_avg.", name)));
    SAE_ASSIGN_OR_RETURN(at::Tensor v, get(absl::StrCat("adam.exp_avg_sq.", name)));
    adam_.exp_avg(i).copy_(m);
    adam_.exp_avg_sq(i).copy_(v);
  }
  if (p.topk_threshold.defined()) {
    SAE_ASSIGN_OR_RETURN(at::Tensor t, get("topk_threshold"));
    p.topk_threshold.copy_(t.reshape({}));
  }
  SAE_ASSIGN_OR_RETURN(at::Tensor passes, get("passes_since_fired"));
  passes_since_fired_.copy_(passes);
  SAE_ASSIGN_OR_RETURN(at::Tensor freq, get("act_freq_scores"));
  act_freq_scores_.copy_(freq);
  SAE_ASSIGN_OR_RETURN(at::Tensor last, get("last_window_sparsity"));
  last_window_sparsity_.copy_(last);
  SAE_ASSIGN_OR_RETURN(at::Tensor rng, get("rng_state"));
  generator_.set_state(rng);
  step_ = j["step"].get<int64_t>();
  tokens_seen_ = j.value("tokens_seen", int64_t{0});
  adam_.set_step(j.value("adam_step", int64_t{0}));
  window_tokens_ = j.value("window_tokens", int64_t{0});
  activation_scale_ = j.value("activation_scale", 0.0);
  std::map<std::string, std::string> extra;
  if (j.contains("extra_base64")) {
    for (auto& [k, v] : j["extra_base64"].items()) {
      std::string decoded;
      if (!absl::Base64Unescape(v.get<std::string>(), &decoded)) {
        return absl::InvalidArgumentError(
            absl::StrCat(dir, "/state.json: extra '", k, "' is not base64"));
      }
      extra[k] = decoded;
    }
  }
  return extra;
}

}  // namespace sae::sparse
