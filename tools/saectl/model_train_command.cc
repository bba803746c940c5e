// saectl model train: trains a GPT-2 on a dataset and writes a Hugging Face folder.
#include "tools/saectl/model_train_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/model/gpt2_trainer.h"
#include "core/model/training_corpus.h"
#include "core/tokenizer/cache_dir.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/status.h"
#include "core/util/torch_runtime.h"
#include "tools/saectl/command.h"
#include "tools/saectl/format.h"
#include "tools/saectl/progress.h"

namespace sae::saectl {
namespace {

std::atomic<bool> g_stop_training{false};

void OnTrainingInterrupt(int) {
  if (g_stop_training.exchange(true)) _exit(kExitStopped);  // a second Ctrl-C: stop now
  const char message[] =
      "\nsaectl: interrupt: writing a checkpoint after this step "
      "(Ctrl-C again to abort without one)\n";
  (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
}

struct ModelTrainFlags {
  std::string preset = "gpt2-mini";
  int n_layer = 0, d_model = 0, n_head = 0;
  std::string dataset;
  std::string tokenizer;
  int64_t tokens = 0;
  int64_t context_size = 0;
  int64_t batch_size = 8;
  double lr = 3e-3;
  double min_lr = -1;
  int64_t warmup_steps = -1;
  double weight_decay = 0.1;
  double max_grad_norm = 1.0;
  uint64_t seed = 0;
  double held_out_fraction = 0.05;
  int64_t checkpoint_every = 0;
  int64_t eval_every = 0;
  std::string out;
  bool resume = false;
  int threads = 0;
};

absl::Status RunModelTrain(const ModelTrainFlags& f) {
  SAE_ASSIGN_OR_RETURN(model::Gpt2Config config, model::Gpt2Preset(f.preset));
  if (f.n_layer > 0) config.n_layer = f.n_layer;
  if (f.d_model > 0) config.n_embd = f.d_model;
  if (f.n_head > 0) config.n_head = f.n_head;
  if (config.n_embd % config.n_head != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--d-model ", config.n_embd, " must be divisible by --n-head ", config.n_head));
  }
  // The model's context is the training context: default the preset's, at most 128.
  const int64_t context =
      f.context_size > 0 ? f.context_size : std::min<int64_t>(config.n_positions, 128);
  if (context < 2 || context > 1 << 20) {
    return absl::InvalidArgumentError(absl::StrCat("--context-size ", context, " must be >= 2"));
  }
  config.n_positions = static_cast<int>(context);
  const int threads = ConfigureTorchThreads(f.threads);

  std::unique_ptr<tokenizer::Gpt2Tokenizer> tok;
  {
    // Token datasets need no tokenizer; text does (Dataset::Open says so when it is missing).
    auto loaded = tokenizer::Gpt2Tokenizer::Load(f.tokenizer.empty()
                                                     ? tokenizer::DefaultTokenizerDir()
                                                     : f.tokenizer);
    if (loaded.ok()) {
      tok = *std::move(loaded);
    } else if (!f.tokenizer.empty()) {
      return loaded.status();
    }
  }
  model::TrainingCorpusOptions corpus_options;
  corpus_options.dataset_path = f.dataset;
  corpus_options.context_size = context;
  corpus_options.held_out_fraction = f.held_out_fraction;
  corpus_options.vocab_size = config.vocab_size;
  SAE_ASSIGN_OR_RETURN(model::TrainingCorpus corpus,
                       model::TrainingCorpus::Load(corpus_options, tok.get()));

  model::Gpt2TrainingOptions options;
  options.config = config;
  options.seed = f.seed;
  options.total_tokens = f.tokens;
  options.batch_size = f.batch_size;
  options.lr = f.lr;
  options.min_lr = f.min_lr >= 0 ? f.min_lr : f.lr / 10;
  options.warmup_steps = f.warmup_steps;
  options.adamw.weight_decay = f.weight_decay;
  options.adamw.max_grad_norm = f.max_grad_norm;
  options.out_dir = f.out;
  options.resume = f.resume;
  options.interrupt = &g_stop_training;
  const int64_t tokens_per_step = f.batch_size * context;
  const int64_t total_steps =
      tokens_per_step > 0 ? (f.tokens + tokens_per_step - 1) / tokens_per_step : 0;
  options.checkpoint_every =
      f.checkpoint_every > 0 ? f.checkpoint_every : std::max<int64_t>(1, total_steps / 5);
  options.eval_every = f.eval_every > 0 ? f.eval_every : std::max<int64_t>(1, total_steps / 10);

  const int64_t train_tokens = corpus.train().numel();
  std::fprintf(stderr,
               "GPT-2 %d layers, d_model %d, %d heads, context %lld, vocab %d; %lld threads\n"
               "corpus %s: %lld documents -> %lld training contexts (%s tokens), %lld held-out "
               "documents -> %lld contexts; unigram entropy %.3f nats (held-out %.3f)\n"
               "training %lld steps of %lld contexts = %s tokens (%.2f epochs)%s\n",
               config.n_layer, config.n_embd, config.n_head, static_cast<long long>(context),
               config.vocab_size, static_cast<long long>(threads), f.dataset.c_str(),
               static_cast<long long>(corpus.documents()),
               static_cast<long long>(corpus.train().size(0)),
               HumanCount(static_cast<double>(train_tokens)).c_str(),
               static_cast<long long>(corpus.held_out_documents()),
               static_cast<long long>(corpus.held_out().size(0)), corpus.train_unigram_entropy(),
               corpus.held_out_unigram_entropy(), static_cast<long long>(total_steps),
               static_cast<long long>(f.batch_size),
               HumanCount(static_cast<double>(total_steps * tokens_per_step)).c_str(),
               static_cast<double>(total_steps * tokens_per_step) / train_tokens,
               f.resume ? ", resuming" : "");

  const bool terminal = ProgressOnTerminal();
  double held_out = NAN;
  const int64_t log_every = std::max<int64_t>(1, total_steps / 50);
  options.on_step = [&](const model::Gpt2StepReport& r) {
    if (std::isfinite(r.held_out_loss)) held_out = r.held_out_loss;
    const double eta = r.tokens_per_second > 0
                           ? static_cast<double>((r.total_steps - r.step) * tokens_per_step) /
                                 r.tokens_per_second
                           : NAN;
    const std::string held_text =
        std::isfinite(held_out) ? absl::StrFormat("%.3f", held_out) : std::string("-");
    if (terminal) {
      RedrawProgressLine(
          absl::StrFormat("%s %s/%s tok  step %lld/%lld  loss %.3f  held-out %s  %s tok/s  ETA %s",
                          ProgressBar(r.step, r.total_steps),
                          HumanCount(static_cast<double>(r.tokens)),
                          HumanCount(static_cast<double>(r.total_steps * tokens_per_step)),
                          r.step, r.total_steps, r.loss, held_text,
                          HumanCount(r.tokens_per_second), HumanDuration(eta)),
          r.step == r.total_steps);
    } else if (r.step % log_every == 0 || r.step == r.total_steps ||
               std::isfinite(r.held_out_loss)) {
      std::fprintf(stderr,
                   "step %lld/%lld tokens %lld loss %.4f held_out %s lr %.3g grad_norm %.3g "
                   "tok/s %.0f\n",
                   static_cast<long long>(r.step), static_cast<long long>(r.total_steps),
                   static_cast<long long>(r.tokens), r.loss, held_text.c_str(), r.learning_rate,
                   r.grad_norm, r.tokens_per_second);
    }
  };

  struct sigaction action = {};
  action.sa_handler = OnTrainingInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  SAE_ASSIGN_OR_RETURN(model::Gpt2TrainingResult result, model::TrainGpt2(corpus, options));
  if (result.interrupted) {
    std::fprintf(stderr,
                 "stopped at step %lld of %lld; checkpoint %s\nresume with the same flags and "
                 "--resume\n",
                 static_cast<long long>(result.steps), static_cast<long long>(result.total_steps),
                 result.checkpoint_dir.c_str());
    return absl::CancelledError("interrupted");
  }
  std::printf("trained %lld steps, %s tokens in %s (%s tokens/s over this run's steps)\n",
              static_cast<long long>(result.steps),
              HumanCount(static_cast<double>(result.tokens)).c_str(),
              HumanDuration(result.seconds).c_str(), HumanCount(result.tokens_per_second).c_str());
  std::printf(
      "held-out loss %.4f nats (perplexity %.1f); unigram entropy %.4f nats held-out, %.4f "
      "training part; last training loss %.4f\n",
      result.held_out_loss, std::exp(result.held_out_loss), result.held_out_unigram_entropy,
      result.train_unigram_entropy, result.last_loss);
  std::printf("wrote %s/config.json and %s/model.safetensors (%lld parameters), %s/training.json\n",
              f.out.c_str(), f.out.c_str(), static_cast<long long>(result.parameters),
              f.out.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterModelTrainCommand(CLI::App& model) {
  auto f = std::make_shared<ModelTrainFlags>();
  CLI::App* train = model.add_subcommand(
      "train",
      "Train a GPT-2 on a dataset (AdamW, warm-up + cosine, clipping; a fraction of its "
      "documents held out) and write a Hugging Face folder");
  train->add_option("--preset", f->preset, "gpt2-mini | gpt2-tiny | gpt2-small | ...")
      ->capture_default_str();
  train->add_option("--n-layer", f->n_layer, "Override the number of layers");
  train->add_option("--d-model", f->d_model, "Override d_model (n_embd)");
  train->add_option("--n-head", f->n_head, "Override the number of heads");
  train->add_option("--dataset", f->dataset, "Dataset: JSONL, text, .bin/.npy, folder or glob")
      ->required();
  train->add_option("--tokenizer", f->tokenizer,
                    "Tokenizer folder for text (default: the cache scripts/fetch-assets.sh fills)");
  train->add_option("--tokens", f->tokens, "Training tokens (batch * context per step)")
      ->required();
  train->add_option("--context-size", f->context_size,
                    "Context (the model's n_positions; default the preset's, at most 128)");
  train->add_option("--batch-size", f->batch_size, "Contexts per step")->capture_default_str();
  train->add_option("--lr", f->lr, "Peak learning rate")->capture_default_str();
  train->add_option("--min-lr", f->min_lr, "Learning rate at the last step (default lr / 10)");
  train->add_option("--warmup-steps", f->warmup_steps,
                    "Linear warm-up steps (default min(100, steps / 10))");
  train->add_option("--weight-decay", f->weight_decay, "AdamW decay of matrices")
      ->capture_default_str();
  train->add_option("--max-grad-norm", f->max_grad_norm, "Clip gradients to this global norm")
      ->capture_default_str();
  train->add_option("--seed", f->seed, "Initialisation and data order")->capture_default_str();
  train->add_option("--held-out-fraction", f->held_out_fraction,
                    "Fraction of the documents never trained on (the held-out loss; the same "
                    "documents as run.yaml's eval_held_out_fraction holds out)")
      ->capture_default_str();
  train->add_option("--checkpoint-every", f->checkpoint_every,
                    "Steps between checkpoints in OUT/checkpoint (default: 5 per run)");
  train->add_option("--eval-every", f->eval_every,
                    "Steps between held-out estimates (default: 10 per run)");
  train->add_option("--out", f->out, "Output folder (Hugging Face GPT-2)")->required();
  train->add_flag("--resume", f->resume, "Continue from OUT/checkpoint with the same flags");
  train->add_option("--threads", f->threads, "LibTorch threads (0: one per core)");
  train->callback([f] { RunCommand([&] { return RunModelTrain(*f); }); });
}

}  // namespace sae::saectl
