// GPT-2 training step (saectl model train's step: the autograd forward, the chunked
// unembedding + cross-entropy backward, clipping, AdamW) in training tokens/s, beside the same
// step in PyTorch eager (nanoGPT's formulation, bench/reference/gpt2_train_eager.py) measured in
// the same run, and beside our step with autograd's full-size logits.
//
//   gpt2_train_bench [reps] [n_layer d_model n_head context batch [chunk_rows]]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/bench_util.h"
#include "core/model/gpt2_training.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using namespace sae::model;

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 5;
  Gpt2Config c;  // gpt2-mini
  c.n_layer = argc > 2 ? std::atoi(argv[2]) : 4;
  c.n_embd = argc > 3 ? std::atoi(argv[3]) : 128;
  c.n_head = argc > 4 ? std::atoi(argv[4]) : 4;
  c.n_positions = argc > 5 ? std::atoi(argv[5]) : 128;
  const int64_t B = argc > 6 ? std::atoi(argv[6]) : 8, T = c.n_positions;
  const int64_t chunk_rows = argc > 7 ? std::atoi(argv[7]) : 128;
  std::printf(
      "GPT-2 training step: %d layers, d_model %d, %d heads, context %lld, batch %lld, vocab %d, "
      "float32, %d threads, median of %d; unembedding in chunks of %lld rows\n",
      c.n_layer, c.n_embd, c.n_head, (long long)T, (long long)B, c.vocab_size, threads, reps,
      (long long)chunk_rows);

  Gpt2TrainingModel model(RandomGpt2Weights(c, 0));
  AdamW optimizer(model.Parameters(), {});
  at::manual_seed(0);
  const at::Tensor tokens = at::randint(0, c.vocab_size, {B, T}, at::kLong);
  const double ours = sae::bench::MedianSeconds(
      [&] {
        model.LossAndBackward(tokens, chunk_rows);
        optimizer.Step(1e-3);
      },
      reps, 1);
  const double autograd = sae::bench::MedianSeconds(
      [&] {
        model.Loss(tokens).backward();
        optimizer.Step(1e-3);
      },
      reps, 1);
  const std::string line = sae::bench::RunAndCaptureLastLine(
      "/usr/bin/python3 " + sae::bench::SourceDir() + "/bench/reference/gpt2_train_eager.py" +
      " --n-layer " + std::to_string(c.n_layer) + " --d-model " + std::to_string(c.n_embd) +
      " --n-head " + std::to_string(c.n_head) + " --context " + std::to_string(T) + " --batch " +
      std::to_string(B) + " --threads " + std::to_string(threads) + " --reps " +
      std::to_string(reps));
  auto j = nlohmann::json::parse(line, nullptr, false);
  const double eager =
      (!j.is_discarded() && j.contains("seconds")) ? j["seconds"].get<double>() : 0;
  const double tokens_per_step = static_cast<double>(B * T);
  std::printf("%-44s %10s %12s %9s\n", "step", "s/step", "tokens/s", "vs eager");
  auto row = [&](const char* name, double s) {
    std::printf("%-44s %10.3f %12.0f %8.2fx\n", name, s, s > 0 ? tokens_per_step / s : 0.0,
                s > 0 && eager > 0 ? eager / s : 0.0);
  };
  row("ours (chunked unembedding backward)", ours);
  row("ours with autograd's full logits", autograd);
  row("PyTorch eager (nanoGPT formulation)", eager);
  return 0;
}
