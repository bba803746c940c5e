// Training step of the SAELens 6 architectures (batchtopk, matryoshka_batchtopk, jumprelu,
// gated) at d_in 768, expansion 32, batch 4096: our hand-written step (with the sparse step where
// the batch is sparse enough, as training runs it, and forced dense) beside the dense PyTorch
// eager formulation with autograd (bench/reference/sae_architectures_eager.py), measured in the
// same run. The SAE is freshly initialised: batchtopk keeps k = 32 latents per token whatever
// the weights; jumprelu and gated start far denser than a trained SAE (see sae_step_bench for
// those at a trained-like L0).
//
//   sae_architectures_bench [REPS]
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
  const int64_t D = 768, B = 4096, K = 32, S = D * 32;
  std::printf("SAELens 6 architectures, step time: d_in %lld, d_sae %lld, batch %lld, float32, "
              "%d threads, median of %d\n",
              (long long)D, (long long)S, (long long)B, threads, reps);
  std::printf("%-22s %10s %10s %10s %9s %9s\n", "arch", "ours (s)", "dense (s)", "eager (s)",
              "vs eager", "L0");
  for (Architecture arch : {Architecture::kBatchTopK, Architecture::kMatryoshkaBatchTopK,
                            Architecture::kJumpReLU, Architecture::kGated}) {
    TrainerOptions o;
    o.sae.architecture = arch;
    o.sae.d_in = D;
    o.sae.d_sae = S;
    o.sae.k = K;
    o.sae.matryoshka_widths = {S / 16, S / 4, S};
    o.lr = 1e-4;
    o.lr_schedule = LrSchedule::kConstant;
    o.l1_coefficient = 1.0;
    o.train_batch_size = B;
    o.total_steps = 1000;
    const std::string name(ArchitectureName(arch));
    double ours = 0, dense = 0, l0 = 0;
    {
      SaeTrainer trainer(o, nullptr);
      at::Tensor x = at::randn({B, D});
      ours = sae::bench::MedianSeconds(
          [&] {
            auto m = trainer.Step(x);
            if (m.ok()) l0 = m->l0;
          },
          reps, 1);
      trainer.sae().set_sparse_step_max_density(-1);
      dense = sae::bench::MedianSeconds([&] { (void)trainer.Step(x); }, reps, 1);
    }
    std::string line = sae::bench::RunAndCaptureLastLine(
        "/usr/bin/python3 " + sae::bench::SourceDir() +
        "/bench/reference/sae_architectures_eager.py --arch " + name + " --threads " +
        std::to_string(threads) + " --reps " + std::to_string(reps));
    auto j = nlohmann::json::parse(line, nullptr, false);
    double eager = (!j.is_discarded() && j.contains("seconds")) ? j["seconds"].get<double>() : 0;
    std::printf("%-22s %10.3f %10.3f %10.3f %8.2fx %9.1f\n", name.c_str(), ours, dense, eager,
                ours > 0 ? eager / ours : 0.0, l0);
    std::fflush(stdout);
  }
  return 0;
}
