// saectl train | cache: training in one process, activation caches.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/config/run_config.h"
#include "core/config/sweep.h"
#include "core/io/saelens.h"
#include "core/metrics/metrics_server.h"
#include "core/metrics/process_metrics.h"
#include "core/training/activation_source.h"
#include "core/training/local_training.h"
#include "core/training/run_assets.h"
#include "core/training/run_evaluation.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"
#include "tools/saectl/command.h"
#include "tools/saectl/format.h"
#include "tools/saectl/memory_report.h"

namespace sae::saectl {
namespace {

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) {
  if (g_interrupted.exchange(true)) _exit(kExitStopped);  // a second Ctrl-C: stop now
  const char message[] =
      "\nsaectl: interrupt: writing a checkpoint at the end of this step "
      "(Ctrl-C again to abort without one)\n";
  (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
}

absl::StatusOr<config::RunConfig> LoadConfigWithOverrides(const std::string& path,
                                                          const std::vector<std::string>& sets) {
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, config::LoadRunConfig(path, sets));
  for (const std::string& w : config.source.warnings) {
    std::fprintf(stderr, "saectl: warning: %s\n", w.c_str());
  }
  return config;
}

struct TrainFlags {
  std::string config;
  std::string output;
  std::string resume;
  std::vector<std::string> sets;
  int metrics_port = -1;
  int threads = 0;
};

absl::Status RunTrain(const TrainFlags& f) {
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, LoadConfigWithOverrides(f.config, f.sets));
  std::string output = f.output;
  if (output.empty()) {
    output = "runs/" + config.run_name.value_or(std::filesystem::path(f.config).stem().string());
  }
  ConfigureTorchThreads(f.threads);

  metrics::Registry registry;
  std::unique_ptr<metrics::MetricsServer> server;
  if (f.metrics_port >= 0) {
    SAE_RETURN_IF_ERROR(metrics::AddProcessMetrics(&registry));
    metrics::MetricsServerOptions options;
    options.port = f.metrics_port;
    SAE_ASSIGN_OR_RETURN(server, metrics::MetricsServer::Start(&registry, options));
    std::fprintf(stderr, "metrics on http://127.0.0.1:%d/metrics\n", server->port());
  }

  training::LocalTrainingOptions options;
  options.output_dir = output;
  if (!f.resume.empty()) options.resume_dir = f.resume;
  options.interrupt = &g_interrupted;
  options.metrics = f.metrics_port >= 0 ? &registry : nullptr;
  options.run_id = std::filesystem::path(output).filename().string();
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const int64_t log_every = std::max<int64_t>(1, config.wandb_log_frequency);
  SAE_ASSIGN_OR_RETURN(const std::vector<config::SaeChild> children, config::ExpandSaes(config));
  if (children.size() > 1 || !children.front().name.empty()) {
    std::fprintf(stderr, "training %zu SAEs from one activation stream:", children.size());
    for (const config::SaeChild& child : children) {
      std::fprintf(stderr, " %s", child.name.c_str());
    }
    std::fprintf(stderr, "\n");
  }
  PrintMemoryEstimate(config);
  // Log lines name the SAE; the progress bar follows the first one.
  auto tag = [](const std::string& sae) { return sae.empty() ? sae : "[" + sae + "] "; };
  options.on_step = [&](const std::string& sae, const sparse::StepMetrics& m, double tps,
                        int64_t total_steps) {
    const double total_tokens = static_cast<double>(total_steps) * config.train_batch_size;
    const double eta = tps > 0 ? (total_tokens - static_cast<double>(m.tokens)) / tps : NAN;
    if (terminal) {
      if (sae != children.front().name) return;
      const int width = 24;
      const int filled = static_cast<int>(width * static_cast<double>(m.step) / total_steps);
      std::fprintf(
          stderr,
          "\r[%s%s] %s/%s tok  step %lld/%lld  loss %.4g  L0 %.1f  EV %.3f  %s tok/s  ETA %s   ",
          std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
          HumanCount(static_cast<double>(m.tokens)).c_str(), HumanCount(total_tokens).c_str(),
          static_cast<long long>(m.step), static_cast<long long>(total_steps), m.overall_loss, m.l0,
          m.explained_variance, HumanCount(tps).c_str(), HumanDuration(eta).c_str());
      if (m.step == total_steps) std::fprintf(stderr, "\n");
    } else if (m.step % log_every == 0 || m.step == total_steps) {
      std::fprintf(stderr,
                   "%sstep %lld/%lld tokens %lld loss %.6g mse %.6g l1 %.6g ghost %.4g L0 %.2f "
                   "explained_variance %.4f dead %lld lr %.3g tok/s %.0f\n",
                   tag(sae).c_str(), static_cast<long long>(m.step),
                   static_cast<long long>(total_steps), static_cast<long long>(m.tokens),
                   m.overall_loss, m.mse_loss, m.l1_loss, m.ghost_grad_loss, m.l0,
                   m.explained_variance, static_cast<long long>(m.dead_features), m.learning_rate,
                   tps);
    }
  };

  // Below the progress bar's line (rewritten in place), or between the log lines.
  options.on_eval = [&](const std::string& sae, const eval::EvalResults& e, int64_t step,
                        bool final) {
    std::fprintf(stderr, "%s%s%s evaluation at step %lld: %s\n", terminal && !final ? "\n" : "",
                 tag(sae).c_str(), final ? "final" : "periodic", static_cast<long long>(step),
                 training::EvalSummaryLine(e).c_str());
  };

  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  SAE_ASSIGN_OR_RETURN(training::LocalTrainingResult result,
                       training::RunLocalTraining(config, options));
  if (result.interrupted) {
    std::fprintf(stderr,
                 "\nstopped at step %lld; checkpoint %s\nresume with: saectl train %s --output %s "
                 "--resume %s\n",
                 static_cast<long long>(result.steps), result.last_checkpoint.c_str(),
                 f.config.c_str(), output.c_str(), result.last_checkpoint.c_str());
    return absl::CancelledError("interrupted");
  }
  std::printf("trained %lld steps, %lld tokens in %s (%.0f tokens/s)\n",
              static_cast<long long>(result.steps), static_cast<long long>(result.tokens),
              HumanDuration(result.seconds).c_str(), result.tokens_per_second);
  for (const training::LocalTrainingResult::Sae& sae : result.saes) {
    if (!sae.name.empty()) std::printf("SAE %s\n", sae.name.c_str());
    std::printf("final SAE (SAELens format): %s\n", sae.final_dir.c_str());
    std::printf("L0 %.2f  explained variance %.4f  dead features %lld  mse %.6g\n", sae.last.l0,
                sae.last.explained_variance, static_cast<long long>(sae.last.dead_features),
                sae.last.mse_loss);
    if (sae.final_eval) {
      const eval::EvalResults& e = *sae.final_eval;
      std::printf(
          "evaluation on %lld contexts: CE-loss score %.4f (CE %.4f clean, %.4f with the "
          "SAE, %.4f zero-ablated), KL-div score %.4f; %s/eval_results.json\n",
          static_cast<long long>(e.contexts), e.ce_loss_score, e.ce_loss_without_sae,
          e.ce_loss_with_sae, e.ce_loss_with_ablation, e.kl_div_score, sae.final_dir.c_str());
    }
  }
  return absl::OkStatus();
}

struct CacheFlags {
  std::string config;
  std::string out;
  std::vector<std::string> sets;
  int64_t rows = 0;
  int64_t chunk_rows = 1 << 16;
  int threads = 0;
};

absl::Status RunCache(const CacheFlags& f) {
  SAE_ASSIGN_OR_RETURN(config::RunConfig config, LoadConfigWithOverrides(f.config, f.sets));
  if (config::TrainsManySaes(config)) {
    return config::ConfigKeyError(config, config.hook_points.empty() ? "sweep" : "hook_points",
                                  "saectl cache writes the activations of one hook; remove "
                                  "sweep: and hook_points: from the file");
  }
  config.use_cached_activations = false;  // the cache is made from the model and the dataset
  ConfigureTorchThreads(f.threads);
  SAE_ASSIGN_OR_RETURN(training::RunAssets assets, training::LoadRunAssets(config));
  SAE_ASSIGN_OR_RETURN(auto source, training::OpenActivationSource(config, assets));
  const int64_t rows = f.rows > 0 ? f.rows : config.total_training_tokens;
  const auto start = std::chrono::steady_clock::now();
  SAE_RETURN_IF_ERROR(training::WriteActivationCache(*source, config, rows, f.chunk_rows, f.out));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "wrote %lld activations of width %lld (%s) to %s in %s; train from them with\n"
      "  use_cached_activations: true\n  cached_activations_path: %s\n",
      static_cast<long long>(rows), static_cast<long long>(source->d_in()),
      config.hook_point.c_str(), f.out.c_str(), HumanDuration(s).c_str(), f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterTrainCommands(CLI::App& app) {
  auto train = std::make_shared<TrainFlags>();
  CLI::App* t = app.add_subcommand("train", "Train an SAE in this process (no cluster)");
  t->add_option("config", train->config, "run.yaml (the seed's or SAELens 6's key names)")
      ->required();
  t->add_option("--output", train->output, "Output folder (default runs/<run_name or file name>)");
  t->add_option("--resume", train->resume, "Checkpoint folder to continue from");
  t->add_option("--set", train->sets, "Override a run.yaml key: --set lr=1e-3 (repeatable)");
  t->add_option("--metrics-port", train->metrics_port,
                "Serve Prometheus /metrics on this port (0: any)");
  t->add_option("--threads", train->threads, "LibTorch threads (0: one per core)");
  t->callback([train] { RunCommand([&] { return RunTrain(*train); }); });

  auto cache = std::make_shared<CacheFlags>();
  CLI::App* c = app.add_subcommand("cache", "Write the activations a run would train on to disk");
  c->add_option("config", cache->config, "run.yaml")->required();
  c->add_option("--out", cache->out, "Output folder")->required();
  c->add_option("--rows", cache->rows, "Activations to write (default total_training_tokens)");
  c->add_option("--chunk-rows", cache->chunk_rows, "Activations per safetensors file")
      ->capture_default_str();
  c->add_option("--set", cache->sets, "Override a run.yaml key (repeatable)");
  c->add_option("--threads", cache->threads, "LibTorch threads (0: one per core)");
  c->callback([cache] { RunCommand([&] { return RunCache(*cache); }); });
}

}  // namespace sae::saectl
