// GPT-2-small-shaped forward: tokens/s and GFLOP/s to hook layer 2 and through all 12 layers,
// beside this machine's LibTorch GEMM rate and the same forward in PyTorch eager, measured in
// the same run.
#include <cstdio>
#include <string>

#include "bench/bench_util.h"
#include "core/model/gpt2_model.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using sae::model::Gpt2Model;

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  const int B = 32, T = 128, D = 768;
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  std::printf("GPT-2 small forward benchmark: batch %d x %d tokens, float32, %d threads\n", B, T,
              threads);

  double gemm = sae::bench::MeasureGemmGflops(B * T, D, 4 * D);
  std::printf("LibTorch GEMM (%d x %d x %d): %.1f GFLOP/s\n", B * T, D, 4 * D, gemm);

  sae::model::Gpt2Config config = *sae::model::Gpt2Preset("gpt2-small");
  auto weights = sae::model::RandomGpt2Weights(config, 0);
  auto model =
      *Gpt2Model::FromWeights(weights, {sae::model::Processing::kTransformerLens, at::kFloat});
  at::Tensor tokens = at::randint(0, config.vocab_size, {B, T}, at::kLong);

  // Per token per block: QKV, output, MLP in and out projections (24 D^2) plus attention
  // scores and mixing over T keys (4 T D), multiply-adds counted as two FLOPs.
  const double flops_per_token_block = 24.0 * D * D + 4.0 * T * D;

  std::printf("\n%-28s %12s %10s %10s %14s %10s\n", "forward", "tokens/s", "GFLOP/s", "of GEMM",
              "eager tokens/s", "vs eager");
  struct Case {
    const char* label;
    const char* hook;
    int blocks;
  };
  for (const Case& c : {Case{"to blocks.2.hook_resid_pre", "blocks.2.hook_resid_pre", 2},
                        Case{"all 12 blocks", "blocks.11.hook_resid_post", 12}}) {
    sae::model::ForwardRequest request;
    request.capture = {*sae::model::ParseHookPoint(c.hook, config.n_layer)};
    double s = sae::bench::MedianSeconds([&] { (void)model->Forward(tokens, request); }, reps, 1);
    double tps = B * T / s;
    double gflops = tps * flops_per_token_block * c.blocks / 1e9;
    std::string line = sae::bench::RunAndCaptureLastLine(
        "/usr/bin/python3 " + sae::bench::SourceDir() + "/bench/reference/gpt2_eager.py --layers " +
        std::to_string(c.blocks) + " --threads " + std::to_string(threads) + " --reps " +
        std::to_string(reps));
    double eager = 0;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("tokens_per_s")) eager = j["tokens_per_s"].get<double>();
    std::printf("%-28s %12.0f %10.1f %9.0f%% %14.0f %9.2fx\n", c.label, tps, gflops,
                100.0 * gflops / gemm, eager, eager > 0 ? tps / eager : 0.0);
  }
  return 0;
}
