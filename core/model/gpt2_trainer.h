// The GPT-2 training loop: batches from a TrainingCorpus, AdamW with a warm-up + cosine
// schedule, periodic held-out loss, checkpoints that resume exactly, and a Hugging Face folder
// at the end.
#ifndef SAE_CORE_MODEL_GPT2_TRAINER_H_
#define SAE_CORE_MODEL_GPT2_TRAINER_H_

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "core/model/gpt2_config.h"
#include "core/model/gpt2_training.h"
#include "core/model/training_corpus.h"

namespace sae::model {

struct Gpt2StepReport {
  int64_t step = 0;  // steps done (1-based after the first)
  int64_t total_steps = 0;
  int64_t tokens = 0;  // training tokens seen, batch_size * context_size per step
  double loss = 0;     // this step's training loss (nats)
  double learning_rate = 0;
  double grad_norm = 0;          // before clipping
  double tokens_per_second = 0;  // over the steps of this process
  double held_out_loss = NAN;    // set on steps that evaluated it
};

struct Gpt2TrainingOptions {
  // The model's shape; n_positions must equal the corpus's context size.
  Gpt2Config config;
  // GPT-2's initialisation (RandomGpt2Weights) and the order of the training contexts.
  uint64_t seed = 0;
  int64_t total_tokens = 0;  // steps = ceil(total_tokens / (batch_size * n_positions))
  int64_t batch_size = 16;   // contexts per step
  double lr = 1e-3;          // peak learning rate
  double min_lr = 1e-4;      // at the last step
  int64_t warmup_steps = -1;  // < 0: min(100, steps / 10)
  AdamWOptions adamw;
  // Steps between checkpoints (out_dir/checkpoint); 0: at the end and on interrupt only.
  int64_t checkpoint_every = 0;
  // Steps between estimates of the held-out loss on its first `eval_contexts` contexts; 0: none
  // before the end, where the loss over every held-out context is computed.
  int64_t eval_every = 0;
  int64_t eval_contexts = 64;
  // Where config.json, model.safetensors, training.json and checkpoint/ go.
  std::string out_dir;
  // Continue from out_dir/checkpoint (exactly: the same parameters and batches as a run that
  // never stopped). Without it, an existing out_dir/checkpoint is FailedPrecondition.
  bool resume = false;
  // Checked after every step: when set, a checkpoint is written and the run returns.
  const std::atomic<bool>* interrupt = nullptr;
  std::function<void(const Gpt2StepReport&)> on_step;
};

struct Gpt2TrainingResult {
  int64_t steps = 0;
  int64_t total_steps = 0;
  int64_t tokens = 0;
  double seconds = 0;  // wall time of this process's steps
  double tokens_per_second = 0;
  double last_loss = NAN;  // training loss of the last step
  // Over every held-out context; NaN when interrupted.
  double held_out_loss = NAN;
  double train_unigram_entropy = 0, held_out_unigram_entropy = 0;
  int64_t parameters = 0;
  bool interrupted = false;
  std::string checkpoint_dir;
};

// Trains (or resumes) and, unless interrupted, writes out_dir/config.json and
// out_dir/model.safetensors (model::SaveGpt2: Hugging Face's GPT-2 layout) and
// out_dir/training.json (the options, the figures of the result). InvalidArgument for bad
// options (naming the option) and for a checkpoint made with other options or another corpus
// (naming the key); FailedPrecondition for a checkpoint present without `resume` or absent with.
absl::StatusOr<Gpt2TrainingResult> TrainGpt2(const TrainingCorpus& corpus,
                                             const Gpt2TrainingOptions& options);

// Mean next-token loss (nats) over `contexts` [N,T], `batch_size` contexts per forward.
double MeanLoss(const Gpt2TrainingModel& model, const at::Tensor& contexts, int64_t batch_size);

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_GPT2_TRAINER_H_
