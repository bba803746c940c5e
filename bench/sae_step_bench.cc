// SAE training step (d_in 768, batch 4096, expansion 8 and 32) for the standard SAE and TopK
// (k = 32): our hand-written step beside the same step in PyTorch eager (the seed's formulation;
// for TopK the dense formulation) measured in the same run, and beside the dense FLOP count at
// this machine's measured GEMM rate.
#include <cstdio>
#include <string>

#include "bench/bench_util.h"
#include "core/sae/sae_trainer.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using namespace sae::sparse;

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t D = 768, B = 4096, K = 32;
  std::printf("SAE step benchmark: d_in %lld, batch %lld, float32, %d threads, median of %d\n",
              (long long)D, (long long)B, threads, reps);
  std::printf("%-10s %6s %12s %12s %9s %14s %12s\n", "arch", "exp", "ours (s)", "eager (s)",
              "vs eager", "dense FLOP (s)", "vs dense");
  for (int expansion : {8, 32}) {
    const int64_t S = D * expansion;
    const double gemm = sae::bench::MeasureGemmGflops(static_cast<int>(B), static_cast<int>(D),
                                                      static_cast<int>(S));
    // Forward (2 GEMMs) and backward (4 GEMMs) of the dense formulation, 2 FLOPs per MAC.
    const double dense_seconds = 12.0 * B * D * S / (gemm * 1e9);
    for (const char* arch : {"standard", "topk"}) {
      TrainerOptions o;
      o.sae.architecture = std::string(arch) == "topk" ? Architecture::kTopK : Architecture::kStandard;
      o.sae.d_in = D;
      o.sae.d_sae = S;
      o.sae.k = K;
      o.lr = 1e-4;
      o.lr_schedule = LrSchedule::kConstant;
      o.l1_coefficient = 8e-5;
      o.train_batch_size = B;
      o.total_steps = 1000;
      SaeTrainer trainer(o, nullptr);
      at::Tensor x = at::randn({B, D});
      double ours = sae::bench::MedianSeconds([&] { (void)trainer.Step(x); }, reps, 1);
      std::string line = sae::bench::RunAndCaptureLastLine(
          "/usr/bin/python3 " + sae::bench::SourceDir() + "/bench/reference/sae_step_eager.py --arch " +
          arch + " --expansion " + std::to_string(expansion) + " --threads " + std::to_string(threads) +
          " --reps " + std::to_string(reps));
      auto j = nlohmann::json::parse(line, nullptr, false);
      double eager = (!j.is_discarded() && j.contains("seconds")) ? j["seconds"].get<double>() : 0;
      std::printf("%-10s %6d %12.3f %12.3f %8.2fx %14.3f %11.2fx\n", arch, expansion, ours, eager,
                  ours > 0 ? eager / ours : 0.0, dense_seconds, ours > 0 ? dense_seconds / ours : 0.0);
    }
    std::printf("(GEMM %lld x %lld x %lld: %.1f GFLOP/s)\n", (long long)B, (long long)D, (long long)S, gemm);
  }
  return 0;
}
