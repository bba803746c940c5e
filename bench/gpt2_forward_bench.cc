// GPT-2-small-shaped forward: tokens/s and GFLOP/s to hook layer 2 and through all 12 layers,
// beside this machine's LibTorch GEMM rate and the same forward in PyTorch eager
// (bench/reference/gpt2_eager.py) under Debian's torch 1.13 and, when scripts/peer-venv.sh has
// made it, the peer virtual environment's torch 2.x, all measured in the same run.
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

  const std::string peer = sae::bench::PeerVenvPython();
  // One reference run: its tokens/s (0 when it failed) and its torch version.
  auto eager = [&](const std::string& python, int blocks, std::string* version) {
    std::string line = sae::bench::RunAndCaptureLastLine(
        python + " " + sae::bench::SourceDir() + "/bench/reference/gpt2_eager.py --layers " +
        std::to_string(blocks) + " --threads " + std::to_string(threads) + " --reps " +
        std::to_string(reps));
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("tokens_per_s")) return 0.0;
    if (j.contains("torch")) *version = j["torch"].get<std::string>();
    return j["tokens_per_s"].get<double>();
  };

  std::printf("\n%-28s %12s %10s %10s %12s %9s %12s %9s\n", "forward", "tokens/s", "GFLOP/s",
              "of GEMM", "eager 1.13", "vs eager", "eager 2.x", "vs 2.x");
  struct Case {
    const char* label;
    const char* hook;
    int blocks;
  };
  std::string old_version = "?", new_version = "?";
  for (const Case& c : {Case{"to blocks.2.hook_resid_pre", "blocks.2.hook_resid_pre", 2},
                        Case{"all 12 blocks", "blocks.11.hook_resid_post", 12}}) {
    sae::model::ForwardRequest request;
    request.capture = {*sae::model::ParseHookPoint(c.hook, config.n_layer)};
    double s = sae::bench::MedianSeconds([&] { (void)model->Forward(tokens, request); }, reps, 1);
    double tps = B * T / s;
    double gflops = tps * flops_per_token_block * c.blocks / 1e9;
    const double old_eager = eager(sae::bench::kDebianPython, c.blocks, &old_version);
    const double new_eager = peer.empty() ? 0.0 : eager(peer, c.blocks, &new_version);
    std::printf("%-28s %12.0f %10.1f %9.0f%% %12.0f %8.2fx %12.0f %8.2fx\n", c.label, tps, gflops,
                100.0 * gflops / gemm, old_eager, old_eager > 0 ? tps / old_eager : 0.0, new_eager,
                new_eager > 0 ? tps / new_eager : 0.0);
    std::fflush(stdout);
  }
  std::printf("eager 1.13: %s, torch %s\n", sae::bench::kDebianPython, old_version.c_str());
  if (peer.empty()) {
    std::printf("eager 2.x: skipped (no peer virtual environment; bash scripts/peer-venv.sh "
                "makes it, or set SAE_PEER_PYTHON)\n");
  } else {
    std::printf("eager 2.x: %s, torch %s\n", peer.c_str(), new_version.c_str());
  }
  return 0;
}
