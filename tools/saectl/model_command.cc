// saectl model init | info | activations (and train: model_train_command.cc)
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/io/tensor_io.h"
#include "core/model/gpt2_model.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"
#include "tools/saectl/command.h"
#include "tools/saectl/model_train_command.h"

namespace sae::saectl {
namespace {

absl::StatusOr<std::vector<int64_t>> ParseTokenList(const std::string& text) {
  std::vector<int64_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int64_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: '", piece, "' is not an integer (expected e.g. 50256,464,2068)"));
    }
    ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("--tokens: no token ids given");
  return ids;
}

absl::StatusOr<at::ScalarType> ParseModelDtype(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype '", name, "' is not supported (expected float32 or bfloat16)"));
}

// A hook's shape with the batch and position dimensions named.
std::string SymbolicShape(const model::HookPoint& hook, const model::ModelDims& dims) {
  std::vector<int64_t> shape = hook.Shape(dims, -1, -2);
  std::vector<std::string> parts;
  for (int64_t d : shape) parts.push_back(d == -1 ? "batch" : d == -2 ? "pos" : absl::StrCat(d));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

struct InitFlags {
  std::string preset = "gpt2-small";
  int n_layer = 0, d_model = 0, n_head = 0, n_ctx = 0, vocab = 0;
  uint64_t seed = 0;
  std::string out;
};

absl::Status RunInit(const InitFlags& f) {
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::Gpt2Preset(f.preset));
  if (f.n_layer > 0) config.n_layer = f.n_layer;
  if (f.d_model > 0) config.n_embd = f.d_model;
  if (f.n_head > 0) config.n_head = f.n_head;
  if (f.n_ctx > 0) config.n_positions = f.n_ctx;
  if (f.vocab > 0) config.vocab_size = f.vocab;
  if (config.n_embd % config.n_head != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--d-model ", config.n_embd, " must be divisible by --n-head ", config.n_head));
  }
  ConfigureTorchThreads(0);
  model::Gpt2Weights weights = model::RandomGpt2Weights(config, f.seed);
  SAE_RETURN_IF_ERROR(model::SaveGpt2(weights, f.out));
  std::printf(
      "wrote %s/config.json and %s/model.safetensors: GPT-2 with %d layers, d_model %d, "
      "%d heads, %lld parameters (random, seed %llu)\n",
      f.out.c_str(), f.out.c_str(), config.n_layer, config.n_embd, config.n_head,
      static_cast<long long>(weights.ParameterCount()), static_cast<unsigned long long>(f.seed));
  return absl::OkStatus();
}

absl::Status RunInfo(const std::string& folder, const std::string& output) {
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::LoadGpt2Config(folder));
  ConfigureTorchThreads(0);
  SAE_ASSIGN_OR_RETURN(model::Gpt2Weights weights, model::LoadGpt2Weights(folder));
  model::ModelDims dims = config.dims();
  std::vector<model::HookPoint> hooks = model::AllHookPoints(config.n_layer);
  if (output == "json") {
    nlohmann::json j;
    j["config"] = nlohmann::json::parse(config.ToJson());
    j["parameters"] = weights.ParameterCount();
    j["tied_lm_head"] = weights.tied_lm_head;
    for (const model::HookPoint& h : hooks) j["hooks"][h.Name()] = h.Shape(dims, -1, -1);
    std::printf("%s\n", j.dump(2).c_str());
    return absl::OkStatus();
  }
  std::printf("model:       %s\n", folder.c_str());
  std::printf(
      "layers:      %d\nd_model:     %d\nheads:       %d x %d\nd_mlp:       %d\n"
      "n_ctx:       %d\nvocab:       %d\nactivation:  %s\nln epsilon:  %g\n",
      config.n_layer, config.n_embd, config.n_head, config.d_head(), config.d_mlp(),
      config.n_positions, config.vocab_size, config.activation_function.c_str(),
      config.layer_norm_epsilon);
  std::printf("parameters:  %lld (lm_head %s)\n", static_cast<long long>(weights.ParameterCount()),
              weights.tied_lm_head ? "tied to wte" : "separate");
  std::printf("hook points (%zu):\n", hooks.size());
  for (const model::HookPoint& h : hooks) {
    std::printf("  %-32s %s\n", h.Name().c_str(), SymbolicShape(h, dims).c_str());
  }
  return absl::OkStatus();
}

struct ActivationFlags {
  std::string model;
  std::vector<std::string> hooks;
  std::string tokens;
  std::string text;
  std::string tokenizer;
  bool prepend_bos = false;
  std::string processing = "transformer_lens";
  std::string dtype = "float32";
  bool logits = false;
  bool loss = false;
  std::string out;
  int threads = 0;
};

absl::Status RunActivations(const ActivationFlags& f) {
  if (f.hooks.empty() && !f.logits && !f.loss) {
    return absl::InvalidArgumentError("nothing to compute: give --hook NAME, --logits or --loss");
  }
  if (f.tokens.empty() == f.text.empty()) {
    return absl::InvalidArgumentError("give exactly one of --tokens IDS and --text STRING");
  }
  std::vector<int64_t> ids;
  std::string token_text = f.tokens;
  if (!f.text.empty()) {
    std::string folder = f.tokenizer.empty() ? tokenizer::DefaultTokenizerDir() : f.tokenizer;
    SAE_ASSIGN_OR_RETURN(auto tok, tokenizer::Gpt2Tokenizer::Load(folder));
    if (f.prepend_bos) ids.push_back(tokenizer::kEndOfText);
    for (int32_t id : tok->Encode(f.text)) ids.push_back(id);
    token_text = absl::StrJoin(ids, ",");
    std::printf("tokens: %s\n", token_text.c_str());
  } else {
    SAE_ASSIGN_OR_RETURN(ids, ParseTokenList(f.tokens));
  }
  if (ids.empty()) return absl::InvalidArgumentError("--text encodes to no tokens");
  model::ModelOptions options;
  SAE_ASSIGN_OR_RETURN(options.processing, model::ParseProcessing(f.processing));
  SAE_ASSIGN_OR_RETURN(options.dtype, ParseModelDtype(f.dtype));
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::LoadGpt2Config(f.model));
  model::ForwardRequest request;
  for (const std::string& name : f.hooks) {
    SAE_ASSIGN_OR_RETURN(model::HookPoint h, model::ParseHookPoint(name, config.n_layer));
    request.capture.push_back(h);
  }
  request.logits = f.logits;
  request.loss = f.loss;
  ConfigureTorchThreads(f.threads);
  SAE_ASSIGN_OR_RETURN(auto gpt2, model::Gpt2Model::Load(f.model, config, options));
  at::Tensor tokens = at::tensor(ids, at::kLong).unsqueeze(0);
  SAE_ASSIGN_OR_RETURN(model::ForwardResult result, gpt2->Forward(tokens, request));
  io::NamedTensors out;
  for (const std::string& name : f.hooks) {
    const at::Tensor& t = result.activations.at(name);
    out.emplace_back(name, t);
    std::printf("%-32s %s\n", name.c_str(),
                absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]").c_str());
  }
  if (f.logits) out.emplace_back("logits", result.logits);
  if (f.loss) out.emplace_back("loss", result.loss);
  SAE_RETURN_IF_ERROR(io::SaveTensors(f.out, out,
                                      {{"format", "pt"},
                                       {"processing", f.processing},
                                       {"dtype", f.dtype},
                                       {"tokens", token_text}}));
  std::printf("wrote %s\n", f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterModelCommands(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "Create, inspect and run GPT-2 models");
  model->require_subcommand(1);

  auto init_flags = std::make_shared<InitFlags>();
  CLI::App* init = model->add_subcommand(
      "init", "Write a GPT-2 with random weights (GPT-2's initialisation) in Hugging Face layout");
  init->add_option("--preset", init_flags->preset, "gpt2-small | gpt2-tiny | gpt2-medium | ...")
      ->capture_default_str();
  init->add_option("--n-layer", init_flags->n_layer, "Override the number of layers");
  init->add_option("--d-model", init_flags->d_model, "Override d_model (n_embd)");
  init->add_option("--n-head", init_flags->n_head, "Override the number of heads");
  init->add_option("--n-ctx", init_flags->n_ctx, "Override the context length (n_positions)");
  init->add_option("--vocab-size", init_flags->vocab, "Override the vocabulary size");
  init->add_option("--seed", init_flags->seed, "Random seed")->capture_default_str();
  init->add_option("--out", init_flags->out, "Output folder")->required();
  init->callback([init_flags] { RunCommand([&] { return RunInit(*init_flags); }); });

  auto info_model = std::make_shared<std::string>();
  auto info_output = std::make_shared<std::string>("text");
  CLI::App* info = model->add_subcommand("info", "Config, parameter count and every hook point");
  info->add_option("--model", *info_model, "Hugging Face GPT-2 folder")->required();
  info->add_option("-o,--output", *info_output, "text | json")
      ->check(CLI::IsMember({"text", "json"}));
  info->callback([=] { RunCommand([&] { return RunInfo(*info_model, *info_output); }); });

  auto act = std::make_shared<ActivationFlags>();
  CLI::App* acts = model->add_subcommand(
      "activations", "Run the forward and write hook activations to a safetensors file");
  acts->add_option("--model", act->model, "Hugging Face GPT-2 folder")->required();
  acts->add_option("--hook", act->hooks, "TransformerLens hook name (repeatable)");
  acts->add_option("--tokens", act->tokens, "Comma-separated token ids, e.g. 50256,464,2068");
  acts->add_option("--text", act->text, "Text to tokenize instead of --tokens");
  acts->add_option("--tokenizer", act->tokenizer,
                   "Tokenizer folder for --text (vocab.json+merges.txt or encoder.json+vocab.bpe; "
                   "default: the cache that scripts/fetch-assets.sh fills)");
  acts->add_flag("--prepend-bos", act->prepend_bos, "Put <|endoftext|> (50256) before --text");
  acts->add_option("--processing", act->processing, "transformer_lens | transformer_lens_uncentered | none")
      ->capture_default_str();
  acts->add_option("--dtype", act->dtype, "float32 | bfloat16")->capture_default_str();
  acts->add_flag("--logits", act->logits, "Also write logits [1,T,V]");
  acts->add_flag("--loss", act->loss, "Also write next-token cross-entropy [1,T-1]");
  acts->add_option("--threads", act->threads, "LibTorch threads (0 = one per core)");
  acts->add_option("--out", act->out, "Output .safetensors file")->required();
  acts->callback([act] { RunCommand([&] { return RunActivations(*act); }); });

  RegisterModelTrainCommand(*model);
}

}  // namespace sae::saectl
