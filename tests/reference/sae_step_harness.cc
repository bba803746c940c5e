// Runs SaeTrainer steps on fixed parameters and batches for the reference test.
//
//   sae_step_harness IN.safetensors OUT.safetensors [EXPORT_DIR]
// IN holds W_enc, b_enc, W_dec, b_dec, batches [steps,B,D] and a JSON string of options in its
// metadata ("options"); jumprelu adds threshold, gated r_mag, b_gate and b_mag (and no b_enc).
// OUT holds, for every step i, the loss terms ("step{i}.loss" = [overall, mse, l1, ghost, aux,
// l0, ev, l0_loss, pre_act_loss, inner_mse_loss, topk_threshold]), the applied gradients
// ("step{i}.grad.{name}") and the parameters after the last step ("final.{name}", and
// "final.topk_threshold" for the batchtopk family). With EXPORT_DIR, the trained SAE is also
// exported there in SAELens's format (as saectl train exports it) and OUT holds, for IN's
// "probe" [N,D], the SAE's inference encoding ("probe.feature_acts") and reconstruction
// ("probe.x_hat").
#include <cstdio>

#include "core/io/tensor_io.h"
#include "core/io/saelens.h"
#include "core/sae/sae_trainer.h"
#include "core/sae/saelens_parameters.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using namespace sae::sparse;

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s IN.safetensors OUT.safetensors [EXPORT_DIR]\n", argv[0]);
    return 2;
  }
  sae::ConfigureTorchThreads(1);
  auto file = sae::io::SafetensorsFile::Open(argv[1]);
  if (!file.ok()) {
    std::fprintf(stderr, "%s\n", file.status().ToString().c_str());
    return 1;
  }
  auto tensors = *sae::io::LoadTensors(argv[1]);
  nlohmann::json o = nlohmann::json::parse((*file)->metadata().at("options"));
  TrainerOptions opt;
  opt.sae.architecture = *ParseArchitecture(o["architecture"].get<std::string>());
  opt.sae.d_in = tensors["W_enc"].size(0);
  opt.sae.d_sae = tensors["W_enc"].size(1);
  opt.sae.k = o.value("k", 4);
  opt.sae.apply_b_dec_to_input = o.value("apply_b_dec_to_input", true);
  opt.sae.normalize_activations =
      *sae::config::ParseChoice<sae::config::NormalizeActivations>(
          o.value("normalize_activations", "none"), "normalize_activations");
  opt.lr = o["lr"];
  opt.lr_schedule = *ParseLrSchedule(o["lr_scheduler_name"].get<std::string>());
  opt.lr_warm_up_steps = o["lr_warm_up_steps"];
  opt.lr_end = o.value("lr_end", opt.lr / 10);
  opt.total_steps = o["total_steps"];
  opt.l1_coefficient = o["l1_coefficient"];
  opt.l1_warm_up_steps = o.value("l1_warm_up_steps", 0);
  opt.use_ghost_grads = o.value("use_ghost_grads", false);
  opt.dead_feature_window = o["dead_feature_window"];
  opt.feature_sampling_window = o.value("feature_sampling_window", 1000);
  opt.aux_k_coefficient = o.value("aux_k_coefficient", 1.0 / 32);
  opt.dead_tokens_threshold = o.value("dead_tokens_threshold", int64_t{10'000'000});
  opt.sae.matryoshka_widths = o.value("matryoshka_widths", std::vector<int64_t>{});
  opt.topk_threshold_lr = o.value("topk_threshold_lr", opt.topk_threshold_lr);
  opt.jumprelu_bandwidth = o.value("jumprelu_bandwidth", opt.jumprelu_bandwidth);
  opt.jumprelu_sparsity_loss = *sae::config::ParseChoice<sae::config::JumpReLUSparsityLoss>(
      o.value("jumprelu_sparsity_loss_mode", "step"), "jumprelu_sparsity_loss_mode");
  opt.target_l0 = o.value("target_l0", 0.0);
  opt.jumprelu_tanh_scale = o.value("jumprelu_tanh_scale", opt.jumprelu_tanh_scale);
  opt.jumprelu_ste_to_input = o.value("jumprelu_ste_to_input", false);
  opt.l0_coefficient = o.value("l0_coefficient", opt.l0_coefficient);
  opt.l0_warm_up_steps = o.value("l0_warm_up_steps", int64_t{0});
  if (o.contains("pre_act_loss_coefficient")) {
    opt.pre_act_loss_coefficient = o["pre_act_loss_coefficient"].get<double>();
  }
  at::Tensor batches = tensors["batches"];
  opt.train_batch_size = batches.size(1);
  auto optional = [&](const char* name) {
    return tensors.count(name) ? tensors[name] : at::Tensor();
  };
  SaeParameters params{optional("W_enc"),     optional("b_enc"), optional("W_dec"),
                       optional("b_dec"),     optional("threshold"), optional("r_mag"),
                       optional("b_gate"),    optional("b_mag")};
  SaeTrainer trainer(opt, params, nullptr);
  if (trainer.NeedsActivationScale()) {  // from the first batch, which is also trained on
    auto scaled = trainer.EstimateActivationScale(
        [&]() -> absl::StatusOr<at::Tensor> { return batches[0]; }, 1);
    if (!scaled.ok()) {
      std::fprintf(stderr, "%s\n", scaled.ToString().c_str());
      return 1;
    }
  }
  sae::io::NamedTensors out;
  for (int64_t s = 0; s < batches.size(0); ++s) {
    auto m = trainer.Step(batches[s]);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
      return 1;
    }
    out.emplace_back("step" + std::to_string(s) + ".loss",
                     at::tensor({m->overall_loss, m->mse_loss, m->l1_loss, m->ghost_grad_loss,
                                 m->aux_loss, m->l0, m->explained_variance, m->l0_loss,
                                 m->pre_act_loss, m->inner_mse_loss, m->topk_threshold},
                                at::kDouble));
    out.emplace_back("step" + std::to_string(s) + ".dead",
                     at::tensor({double(m->dead_features)}, at::kDouble));
    auto grads = trainer.last_gradients();
    auto named = trainer.sae().params().Named();
    for (size_t i = 0; i < named.size(); ++i) {
      out.emplace_back("step" + std::to_string(s) + ".grad." + named[i].first, grads[i].clone());
    }
  }
  for (auto& [name, t] : trainer.sae().params().Named()) out.emplace_back("final." + name, t);
  if (trainer.sae().params().topk_threshold.defined()) {
    out.emplace_back("final.topk_threshold",
                     trainer.sae().params().topk_threshold.reshape({1}).clone());
  }
  if (argc == 4) {
    sae::io::SaeLensSae exported;
    exported.metadata.hook_name = "blocks.0.hook_resid_pre";
    ExportTensors(trainer.InferenceParameters(), opt.sae.architecture, exported);
    exported.metadata.normalize_activations =
        std::string(sae::config::ToString(trainer.InferenceOptions().normalize_activations));
    auto written = sae::io::WriteSaeLens(argv[3], exported);
    if (!written.ok()) {
      std::fprintf(stderr, "%s\n", written.ToString().c_str());
      return 1;
    }
    // What the trained SAE computes on the model's activations (normalisation and an unapplied
    // decoder bias folded as in exports).
    SparseAutoencoder inference(trainer.InferenceOptions(), trainer.InferenceParameters());
    out.emplace_back("probe.feature_acts", inference.Encode(tensors["probe"]));
    out.emplace_back("probe.x_hat", inference.Reconstruct(tensors["probe"]));
  }
  auto status = sae::io::SaveTensors(argv[2], out);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
