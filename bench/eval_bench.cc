// SAE evaluation throughput: tokens/s of EvaluateSae (three forwards with logits and loss, the
// SAE in the second, KL over the vocabulary) beside its floor, three plain forwards with logits
// and loss of the same batches, measured in the same run. Usage: eval_bench [reps] [preset]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/eval/evaluation.h"
#include "core/model/gpt2_model.h"
#include "core/util/torch_runtime.h"

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const std::string preset = argc > 2 ? argv[2] : "gpt2-small";
  const int64_t n_batches = 2, batch = 8, T = 128;

  sae::model::Gpt2Config config = *sae::model::Gpt2Preset(preset);
  auto model = *sae::model::Gpt2Model::FromWeights(
      sae::model::RandomGpt2Weights(config, 0),
      {sae::model::Processing::kTransformerLens, at::kFloat});
  const int layer = config.n_layer / 2;
  sae::eval::SaeForEval sae;
  sae.hook_name = "blocks." + std::to_string(layer) + ".hook_resid_pre";
  sae.options.d_in = config.n_embd;
  sae.options.d_sae = 8 * config.n_embd;
  {
    sae::sparse::SparseAutoencoder init(sae.options, 0);
    sae.params = init.params();  // the seed's initialisation; a standard SAE's cost is dense
  }
  at::manual_seed(1);
  const at::Tensor contexts = at::randint(0, config.vocab_size, {n_batches * batch, T}, at::kLong);
  std::printf(
      "SAE eval benchmark: %s, SAE %lld x %lld at %s, %lld batches of %lld x %lld tokens, "
      "float32, %d threads\n",
      preset.c_str(), static_cast<long long>(sae.options.d_in),
      static_cast<long long>(sae.options.d_sae), sae.hook_name.c_str(),
      static_cast<long long>(n_batches), static_cast<long long>(batch),
      static_cast<long long>(T), threads);

  sae::eval::EvalOptions options{n_batches, batch};
  auto eval_once = [&] {
    sae::eval::TensorContextSource source(contexts);
    auto r = sae::eval::EvaluateSae(*model, sae, source, options);
    if (!r.ok()) {
      std::fprintf(stderr, "eval failed: %s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
  };
  sae::model::ForwardRequest plain;
  plain.logits = true;
  plain.loss = true;
  auto floor_once = [&] {
    for (int64_t b = 0; b < n_batches; ++b) {
      const at::Tensor tokens = contexts.narrow(0, b * batch, batch);
      for (int f = 0; f < 3; ++f) (void)model->Forward(tokens, plain);
    }
  };
  // Alternating repetitions, so that a change in the machine's load hits both alike.
  (void)model->Forward(contexts.narrow(0, 0, 1), plain);  // warm-up
  std::vector<double> eval_times, floor_times;
  for (int i = 0; i < reps; ++i) {
    eval_times.push_back(sae::bench::MedianSeconds(eval_once, 1, 0));
    floor_times.push_back(sae::bench::MedianSeconds(floor_once, 1, 0));
  }
  std::sort(eval_times.begin(), eval_times.end());
  std::sort(floor_times.begin(), floor_times.end());
  const double eval_s = eval_times[eval_times.size() / 2];
  const double floor_s = floor_times[floor_times.size() / 2];
  const double tokens = static_cast<double>(n_batches * batch * T);
  std::printf("\n%-44s %12s %10s\n", "", "tokens/s", "seconds");
  std::printf("%-44s %12.0f %10.3f\n", "saectl eval (EvaluateSae)", tokens / eval_s, eval_s);
  std::printf("%-44s %12.0f %10.3f\n", "floor: 3 plain forwards (logits + loss)", tokens / floor_s,
              floor_s);
  std::printf("eval / floor: %.2f of the floor's throughput\n", floor_s / eval_s);
  return 0;
}
