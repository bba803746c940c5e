// Runs GPT-2 training steps (model::Gpt2TrainingModel + model::AdamW + LearningRateSchedule) on
// fixed parameters and batches for tests/reference/gpt2_train_step_reference.py.
//
//   gpt2_train_step_harness IN.safetensors OUT.safetensors
// IN holds the parameters in Hugging Face's naming (float64 or float32; tied lm_head), "batches"
// [steps,B,T] int64, and in its metadata "config" (config.json text) and "options" (JSON: lr,
// min_lr, warmup_steps, total_steps, beta1, beta2, eps, weight_decay, max_grad_norm). OUT holds
// "step{i}.loss", "step{i}.grad_norm", "step{i}.lr" and the parameters after the last step
// ("final.{name}").
#include <cstdio>
#include <string>

#include "core/io/safetensors.h"
#include "core/io/tensor_io.h"
#include "core/model/gpt2_training.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using namespace sae::model;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN.safetensors OUT.safetensors\n", argv[0]);
    return 2;
  }
  sae::ConfigureTorchThreads(1);
  auto file = sae::io::SafetensorsFile::Open(argv[1]);
  auto tensors = sae::io::LoadTensors(argv[1]);
  if (!file.ok() || !tensors.ok()) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 1;
  }
  auto config = ParseGpt2Config((*file)->metadata().at("config"), "config");
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 1;
  }
  nlohmann::json o = nlohmann::json::parse((*file)->metadata().at("options"));
  auto& t = *tensors;
  Gpt2Weights w;
  w.config = *config;
  w.wte = t.at("wte.weight");
  w.wpe = t.at("wpe.weight");
  for (int l = 0; l < config->n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    Gpt2BlockWeights b;
    b.ln_1_weight = t.at(p + "ln_1.weight");
    b.ln_1_bias = t.at(p + "ln_1.bias");
    b.attn_c_attn_weight = t.at(p + "attn.c_attn.weight");
    b.attn_c_attn_bias = t.at(p + "attn.c_attn.bias");
    b.attn_c_proj_weight = t.at(p + "attn.c_proj.weight");
    b.attn_c_proj_bias = t.at(p + "attn.c_proj.bias");
    b.ln_2_weight = t.at(p + "ln_2.weight");
    b.ln_2_bias = t.at(p + "ln_2.bias");
    b.mlp_c_fc_weight = t.at(p + "mlp.c_fc.weight");
    b.mlp_c_fc_bias = t.at(p + "mlp.c_fc.bias");
    b.mlp_c_proj_weight = t.at(p + "mlp.c_proj.weight");
    b.mlp_c_proj_bias = t.at(p + "mlp.c_proj.bias");
    w.blocks.push_back(b);
  }
  w.ln_f_weight = t.at("ln_f.weight");
  w.ln_f_bias = t.at("ln_f.bias");
  w.lm_head = w.wte;
  w.tied_lm_head = true;

  Gpt2TrainingModel model(w);
  AdamWOptions adamw;
  adamw.beta1 = o["beta1"];
  adamw.beta2 = o["beta2"];
  adamw.eps = o["eps"];
  adamw.weight_decay = o["weight_decay"];
  adamw.max_grad_norm = o["max_grad_norm"];
  AdamW optimizer(model.Parameters(), adamw);
  const LearningRateSchedule schedule{o["lr"], o["min_lr"], o["warmup_steps"], o["total_steps"]};
  const at::Tensor batches = t.at("batches");
  sae::io::NamedTensors out;
  for (int64_t s = 0; s < batches.size(0); ++s) {
    const double loss = model.LossAndBackward(batches[s], /*chunk_rows=*/5);
    const double lr = schedule.At(s);
    const double norm = optimizer.Step(lr);
    const std::string p = "step" + std::to_string(s);
    out.emplace_back(p + ".loss", at::tensor({loss}, at::kDouble));
    out.emplace_back(p + ".grad_norm", at::tensor({norm}, at::kDouble));
    out.emplace_back(p + ".lr", at::tensor({lr}, at::kDouble));
  }
  for (auto& [name, p] : model.Parameters()) out.emplace_back("final." + name, p.detach());
  auto status = sae::io::SaveTensors(argv[2], out);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
