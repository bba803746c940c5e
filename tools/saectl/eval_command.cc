// saectl eval: how much of the model's behaviour survives when an SAE's reconstruction replaces
// the activation it was trained on (docs/evals.md).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/data/dataset.h"
#include "core/eval/evaluation.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_model.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "tools/saectl/command.h"
#include "tools/saectl/sae_inputs.h"

namespace sae::saectl {
namespace {

struct EvalFlags {
  std::string sae_dir;
  std::string model;
  std::string dataset;
  int64_t n_eval_batches = 10;
  int64_t eval_batch_size_prompts = 8;
  double held_out_fraction = 0;  // > 0: the dataset's held-out documents
  int64_t context_size = 0;     // 0: the SAE's cfg.json
  std::string prepend_bos;      // empty: the SAE's cfg.json
  std::string processing;       // empty: the SAE's cfg.json
  std::string dtype = "float32";
  std::string output = "table";
  std::string out;
  std::string tokenizer;
  int threads = 0;
};

absl::Status RunEval(const EvalFlags& f) {
  if (f.n_eval_batches <= 0 || f.eval_batch_size_prompts <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--n-eval-batches (", f.n_eval_batches, ") and --eval-batch-size-prompts (",
        f.eval_batch_size_prompts, ") must be positive"));
  }
  if (!(f.held_out_fraction >= 0 && f.held_out_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--held-out-fraction is ", f.held_out_fraction,
                     "; it must be in [0, 0.5] (0: the dataset's first contexts)"));
  }
  // The SAE and what its cfg.json says about how it was trained, flags overriding it.
  SAE_ASSIGN_OR_RETURN(
      SaeInputs inputs,
      ReadSaeInputs({f.sae_dir, f.context_size, f.prepend_bos, f.processing, f.dtype}));
  const eval::SaeForEval& sae = inputs.sae;
  const int64_t context_size = inputs.context_size;
  const bool prepend_bos = inputs.prepend_bos;
  const model::ModelOptions model_options = inputs.model_options;

  // The SAE against the model, before anything heavy is loaded.
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::LoadGpt2Config(f.model));
  SAE_RETURN_IF_ERROR(eval::CheckSaeFitsModel(sae, config, f.model).status());
  if (context_size < 2 || context_size > config.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context size ", context_size, f.context_size > 0 ? " (--context-size)" : " (cfg.json)",
        " must be in [2, ", config.n_positions, "], the context length of model ", f.model));
  }

  // The first N*M contexts, packed as training packs them: of the whole dataset, or of its
  // held-out documents (the ones `saectl model train` and run.yaml's eval_held_out_fraction hold
  // out with the same fraction). The dataset points to the tokenizer, which must outlive it.
  std::unique_ptr<tokenizer::Gpt2Tokenizer> tokenizer;
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<const data::Dataset> dataset,
                       OpenDatasetFor(f.dataset, f.tokenizer, f.model, context_size, prepend_bos,
                                      config.vocab_size, &tokenizer));
  uint32_t shard = 0;
  if (f.held_out_fraction > 0) {
    data::DatasetOptions options = dataset->options();
    options.held_out_fraction = f.held_out_fraction;
    SAE_ASSIGN_OR_RETURN(dataset, data::Dataset::Open(options, tokenizer.get()));
    shard = data::Dataset::kHeldOutShard;
  }
  const int64_t count = f.n_eval_batches * f.eval_batch_size_prompts;
  auto contexts = eval::ReadFirstContexts(dataset, count, shard);
  if (!contexts.ok()) {
    return absl::Status(contexts.status().code(),
                        absl::StrCat(contexts.status().message(), " (--n-eval-batches ",
                                     f.n_eval_batches, " x --eval-batch-size-prompts ",
                                     f.eval_batch_size_prompts, ")"));
  }

  ConfigureTorchThreads(f.threads);
  SAE_ASSIGN_OR_RETURN(auto gpt2, model::Gpt2Model::Load(f.model, config, model_options));
  eval::TensorContextSource source(*contexts);
  eval::EvalOptions options;
  options.n_eval_batches = f.n_eval_batches;
  options.eval_batch_size_prompts = f.eval_batch_size_prompts;
  SAE_ASSIGN_OR_RETURN(eval::EvalResults results, eval::EvaluateSae(*gpt2, sae, source, options));

  const nlohmann::json json = eval::ToJson(results);
  if (!f.out.empty()) SAE_RETURN_IF_ERROR(WriteFileAtomically(f.out, json.dump(2) + "\n"));
  if (f.output == "json") {
    std::printf("%s\n", json.dump(2).c_str());
  } else {
    std::printf("SAE %s (%s, d_in %lld, d_sae %lld) at %s%s\n", f.sae_dir.c_str(),
                std::string(sparse::ArchitectureName(sae.options.architecture)).c_str(),
                static_cast<long long>(sae.options.d_in),
                static_cast<long long>(sae.options.d_sae), sae.hook_name.c_str(),
                sae.hook_head_index >= 0 ? absl::StrCat(" head ", sae.hook_head_index).c_str()
                                         : "");
    const std::string processing(model::ProcessingName(model_options.processing));
    const std::string held_out =
        f.held_out_fraction > 0
            ? absl::StrCat(" (its held-out documents, fraction ", f.held_out_fraction, ")")
            : "";
    std::printf("model %s (processing %s, %s); %lld contexts of %lld tokens from %s%s\n\n",
                f.model.c_str(), processing.c_str(), f.dtype.c_str(),
                static_cast<long long>(count), static_cast<long long>(context_size),
                f.dataset.c_str(), held_out.c_str());
    std::printf("%s", eval::FormatEvalTable(results).c_str());
  }
  std::fflush(stdout);
  if (!f.out.empty()) std::fprintf(stderr, "wrote %s\n", f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterEvalCommands(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Evaluate an SAE in its model: CE-loss and KL with the SAE spliced in and with the hook "
      "zero-ablated, reconstruction, shrinkage and sparsity (SAELens's metrics)");
  cmd->add_option("SAE_DIR", f->sae_dir, "SAELens folder (cfg.json + sae_weights.safetensors)")
      ->required();
  cmd->add_option("--model", f->model, "Hugging Face GPT-2 folder")->required();
  cmd->add_option("--dataset", f->dataset,
                  "Dataset (file, folder or glob, as run.yaml's dataset_path); its first "
                  "N x M contexts are evaluated")
      ->required();
  cmd->add_option("--n-eval-batches", f->n_eval_batches, "Batches (N)")->capture_default_str();
  cmd->add_option("--held-out-fraction", f->held_out_fraction,
                  "Evaluate on the dataset's held-out documents at this fraction (those "
                  "`saectl model train --held-out-fraction` and run.yaml's eval_held_out_fraction "
                  "hold out); 0: its first contexts")
      ->capture_default_str();
  cmd->add_option("--eval-batch-size-prompts", f->eval_batch_size_prompts,
                  "Contexts per batch (M)")
      ->capture_default_str();
  cmd->add_option("--context-size", f->context_size, "Tokens per context (default: cfg.json)");
  cmd->add_option("--prepend-bos", f->prepend_bos, "true | false (default: cfg.json)");
  cmd->add_option("--processing", f->processing,
                  "transformer_lens | transformer_lens_uncentered | none: the model weights the "
                  "SAE was trained on (default: cfg.json's model_from_pretrained_kwargs)");
  cmd->add_option("--dtype", f->dtype, "Model compute type: float32 | bfloat16")
      ->capture_default_str();
  cmd->add_option("-o,--output", f->output, "table | json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  cmd->add_option("--out", f->out, "Also write the results as JSON to this file");
  cmd->add_option("--tokenizer", f->tokenizer,
                  "Tokenizer folder for text datasets (default: the model's, else the cache)");
  cmd->add_option("--threads", f->threads, "LibTorch threads (0 = one per core)");
  cmd->callback([f] { RunCommand([&] { return RunEval(*f); }); });
}

}  // namespace sae::saectl
