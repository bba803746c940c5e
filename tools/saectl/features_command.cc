// saectl features: what each feature of an SAE responds to and what it does (docs/features.md):
// statistics over a pass of the model over a dataset, written as JSON lines and as a static HTML
// dashboard.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/data/dataset.h"
#include "core/eval/evaluation.h"
#include "core/features/feature_output.h"
#include "core/features/feature_pass.h"
#include "core/io/saelens.h"
#include "core/model/gpt2_model.h"
#include "core/model/gpt2_weights.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "spdlog/spdlog.h"
#include "tools/saectl/command.h"
#include "tools/saectl/features_command.h"
#include "tools/saectl/sae_inputs.h"
#include "tools/saectl/progress.h"

namespace sae::saectl {
namespace {

// Ctrl-C / SIGTERM: the pass stops after its batch and nothing is written.
std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted.store(true); }

}  // namespace

absl::Status RunFeatures(const FeaturesFlags& f) {
  const auto started = std::chrono::steady_clock::now();
  if (f.model.empty() || f.dataset.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--model and --dataset are required with an SAE folder (", f.sae_dir,
        "); with a run id instead, saectl features takes the run's model and dataset"));
  }
  const std::string label = f.sae_label.empty() ? f.sae_dir : f.sae_label;
  if (f.top <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("--top ", f.top, " must be positive"));
  }
  if (f.intervals <= 0 || f.samples < 0 || f.window_before < 0 || f.window_after < 0 ||
      f.logit_k < 0 || f.neighbours < 0) {
    return absl::InvalidArgumentError(
        "--intervals must be positive; --samples, --window-before, --window-after, --logit-k "
        "and --neighbours must not be negative");
  }
  const std::string out = f.out.empty() ? f.sae_dir + "/features" : f.out;
  SAE_RETURN_IF_ERROR(features::CheckOutputFolder(out));

  // The SAE and what its cfg.json says about how it was trained, flags overriding it.
  SAE_ASSIGN_OR_RETURN(
      SaeInputs inputs,
      ReadSaeInputs({f.sae_dir, f.context_size, f.prepend_bos, f.processing, f.dtype}));
  const eval::SaeForEval& sae = inputs.sae;
  const int64_t context_size = inputs.context_size;
  const bool prepend_bos = inputs.prepend_bos;
  const model::ModelOptions model_options = inputs.model_options;
  std::vector<int64_t> selected;  // empty: all
  if (!f.features.empty()) {
    SAE_ASSIGN_OR_RETURN(selected, features::ParseFeatureList(f.features, sae.options.d_sae));
  }

  // The SAE against the model, before anything heavy is loaded.
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::LoadGpt2Config(f.model));
  if (absl::Status fits = eval::CheckSaeFitsModel(sae, config, f.model).status(); !fits.ok()) {
    return absl::Status(fits.code(),
                        absl::StrCat(fits.message(), " (SAE ", f.sae_dir,
                                     "): give the model the SAE was trained on with --model, or "
                                     "an SAE trained on this model"));
  }
  if (context_size < 2 || context_size > config.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat(
        "context size ", context_size, f.context_size > 0 ? " (--context-size)" : " (cfg.json)",
        " must be in [2, ", config.n_positions, "], the context length of model ", f.model));
  }
  const int64_t n_contexts = f.tokens / context_size;
  if (n_contexts <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tokens ", f.tokens, " is less than one context of ", context_size,
        " tokens; give --tokens ", context_size, " or more"));
  }
  if (f.top > n_contexts) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--top ", f.top, " asks for more contexts than the ", n_contexts, " contexts of ",
        context_size, " tokens that --tokens ", f.tokens, " holds; lower --top to at most ",
        n_contexts, " or raise --tokens to at least ", f.top * context_size));
  }

  // The first contexts of the dataset, packed as training packs them.
  std::unique_ptr<tokenizer::Gpt2Tokenizer> tok;
  absl::Status tokenizer_status;
  SAE_ASSIGN_OR_RETURN(auto dataset,
                       OpenDatasetFor(f.dataset, f.tokenizer, f.model, context_size, prepend_bos,
                                      config.vocab_size, &tok, &tokenizer_status));
  auto contexts = eval::ReadFirstContexts(dataset, n_contexts);
  if (!contexts.ok()) {
    return absl::Status(contexts.status().code(),
                        absl::StrCat("--dataset: ", contexts.status().message(), " (--tokens ",
                                     f.tokens, "); lower --tokens or give a larger dataset"));
  }
  if (!tok) {
    spdlog::warn("no tokenizer ({}): tokens are shown as ids", std::string(tokenizer_status.message()));
  }

  const int threads = ConfigureTorchThreads(f.threads);
  SAE_ASSIGN_OR_RETURN(model::Gpt2Weights weights, model::LoadGpt2Weights(f.model));
  SAE_ASSIGN_OR_RETURN(auto gpt2, model::Gpt2Model::FromWeights(weights, model_options));

  features::FeaturePassOptions options;
  options.collector.top_k = f.top;
  options.collector.n_intervals = f.intervals;
  options.collector.samples_per_interval = f.samples;
  options.collector.window_before = f.window_before;
  options.collector.window_after = f.window_after;
  options.logit_k = f.logit_k;
  options.neighbours = f.neighbours;
  const bool terminal = ProgressOnTerminal();
  const auto pass_start = std::chrono::steady_clock::now();
  int last_decile = 0;
  options.progress = [&](int64_t done, int64_t total) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count();
    const std::string line = absl::StrFormat(
        "features %s %lld/%lld contexts, %.0f tokens/s", ProgressBar(done, total),
        static_cast<long long>(done), static_cast<long long>(total),
        s > 0 ? static_cast<double>(done * context_size) / s : 0.0);
    if (terminal) {
      RedrawProgressLine(line, done == total);
    } else if (done * 10 / total > last_decile || done == total) {
      last_decile = static_cast<int>(done * 10 / total);
      spdlog::info("{}", line);
    }
  };
  options.on_phase = [&](const std::string& phase) {
    spdlog::info("{} of {} features", phase,
                 selected.empty() ? sae.options.d_sae : static_cast<int64_t>(selected.size()));
  };
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  auto stop = [] { return g_interrupted.load(); };
  options.stop = stop;
  auto interrupted = [&](const absl::Status& status) {
    return status.code() == absl::StatusCode::kCancelled
               ? absl::CancelledError(absl::StrCat("interrupted; nothing written to ", out))
               : status;
  };
  absl::StatusOr<features::FeatureReport> computed =
      features::ComputeFeatureReport(*gpt2, weights, sae, *contexts, selected, options);
  if (!computed.ok()) return interrupted(computed.status());
  const features::FeatureReport& report = *computed;

  nlohmann::json summary = {
      {"sae", label},
      {"hook_name", sae.hook_name},
      {"hook_head_index", sae.hook_head_index},
      {"architecture", std::string(sparse::ArchitectureName(sae.options.architecture))},
      {"d_in", sae.options.d_in},
      {"d_sae", sae.options.d_sae},
      {"model", f.model},
      {"processing", std::string(model::ProcessingName(model_options.processing))},
      {"dtype", f.dtype},
      {"dataset", f.dataset},
      {"prepend_bos", prepend_bos},
      {"threads", threads},
      {"options",
       {{"top_k", f.top},
        {"intervals", f.intervals},
        {"samples_per_interval", f.samples},
        {"window_before", f.window_before},
        {"window_after", f.window_after},
        {"logit_k", f.logit_k},
        {"neighbours", f.neighbours}}},
  };
  spdlog::info("writing {}", out);
  const auto write_start = std::chrono::steady_clock::now();
  if (absl::Status written =
          features::WriteFeatureOutput(out, report, *contexts, tok.get(), summary, stop);
      !written.ok()) {
    return interrupted(written);
  }
  const double write_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  int64_t dead = 0;
  for (const features::FeatureStats& s : report.stats) dead += s.count == 0 ? 1 : 0;
  std::printf("%zu features of SAE %s (%s, d_sae %lld) at %s: %lld dead\n", report.stats.size(),
              label.c_str(),
              std::string(sparse::ArchitectureName(sae.options.architecture)).c_str(),
              static_cast<long long>(sae.options.d_sae), sae.hook_name.c_str(),
              static_cast<long long>(dead));
  std::printf("%lld tokens (%lld contexts of %lld) in %.1f s: %.0f tokens/s on %d threads; "
              "logit effects %.1f s, neighbours %.1f s, writing %.1f s, total %.1f s\n",
              static_cast<long long>(report.tokens), static_cast<long long>(report.contexts),
              static_cast<long long>(report.context_size), report.pass_seconds,
              report.pass_seconds > 0 ? report.tokens / report.pass_seconds : 0.0, threads,
              report.logits_seconds, report.neighbours_seconds, write_s, total_s);
  if (!report.has_logits) std::printf("no logit effects: %s\n", report.logits_note.c_str());
  std::printf("wrote %s (features.jsonl, summary.json; open %s/index.html)\n", out.c_str(),
              out.c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

void RegisterFeaturesCommands(CLI::App& app) {
  auto f = std::make_shared<FeaturesFlags>();
  CLI::App* cmd = app.add_subcommand(
      "features",
      "Feature dashboards of an SAE: per feature its firing frequency, max and mean activation, "
      "top contexts, samples from activation quantiles, histogram, logit effects and nearest "
      "features, as features.jsonl and a static HTML dashboard. With a run id instead of a "
      "folder: the run's SAE, model and dataset, the result stored with the run in the "
      "controller (saectl export and the web console show it)");
  cmd->add_option("SAE_DIR", f->sae_dir,
                  "SAELens folder (cfg.json + sae_weights.safetensors), or the id of a run on "
                  "the controller")
      ->required();
  cmd->add_option("--model", f->model,
                  "Hugging Face GPT-2 folder (required with a folder; a run's model_path by "
                  "default)");
  cmd->add_option("--dataset", f->dataset,
                  "Dataset (file, folder or glob, as run.yaml's dataset_path); its first contexts "
                  "are read, packed as training packs them (required with a folder; a run's "
                  "dataset_path by default)");
  cmd->add_option("--tokens", f->tokens, "Tokens of the pass (whole contexts)")
      ->capture_default_str();
  cmd->add_option("--top", f->top, "Top activating contexts per feature (K)")
      ->capture_default_str();
  auto* list = cmd->add_option("--features", f->features,
                               "Features to report, e.g. 0-99,512 (default: all)");
  cmd->add_flag("--all", f->all, "Every feature (the default)")->excludes(list);
  cmd->add_option("--out", f->out,
                  "Output folder (default: SAE_DIR/features; with a run: none, the result is "
                  "stored in the controller); replaced atomically");
  cmd->add_option("--step", f->step,
                  "With a run: the checkpoint step whose SAE to use (default: the final SAE, "
                  "else the newest checkpoint)");
  AddServerFlags(cmd, &f->server);
  cmd->add_option("--context-size", f->context_size, "Tokens per context (default: cfg.json)");
  cmd->add_option("--prepend-bos", f->prepend_bos, "true | false (default: cfg.json)");
  cmd->add_option("--processing", f->processing,
                  "transformer_lens | transformer_lens_uncentered | none (default: cfg.json's "
                  "model_from_pretrained_kwargs)");
  cmd->add_option("--dtype", f->dtype, "Model compute type: float32 | bfloat16")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f->tokenizer,
                  "Tokenizer folder (default: the model's, else the cache)");
  cmd->add_option("--intervals", f->intervals, "Quantile intervals sampled per feature")
      ->capture_default_str();
  cmd->add_option("--samples", f->samples, "Samples per quantile interval")->capture_default_str();
  cmd->add_option("--window-before", f->window_before, "Tokens shown before an example's token")
      ->capture_default_str();
  cmd->add_option("--window-after", f->window_after, "Tokens shown after it")
      ->capture_default_str();
  cmd->add_option("--logit-k", f->logit_k, "Tokens in each logit table")->capture_default_str();
  cmd->add_option("--neighbours", f->neighbours, "Nearest features listed")->capture_default_str();
  cmd->add_option("--threads", f->threads, "LibTorch threads (0 = one per core)");
  cmd->callback([f] {
    RunCommand([&] {
      // A folder (or a path: run ids hold no '/') is the local form; anything else names a
      // run on the controller.
      const bool folder = std::filesystem::is_directory(f->sae_dir) ||
                          f->sae_dir.find('/') != std::string::npos;
      return folder ? RunFeatures(*f) : RunFeaturesOfRun(*f);
    });
  });
}

}  // namespace sae::saectl
