// SAE training step (d_in 768, batch 4096, expansion 32 and 64) of the standard SAE at L0 = 32,
// 128 and 512 (a trained-like SAE: b_enc puts each latent's firing rate at L0 / d_sae on this
// data) and of the TopK SAE at k = 32, beside the eager PyTorch step
// (bench/reference/sae_step_eager.py: the seed's for standard, same L0, same thread count) under
// Debian's torch 1.13 and, when scripts/peer-venv.sh has made it, the peer virtual environment's
// torch 2.x, and beside one dense encoder GEMM (the floor: the only dense GEMM the sparse step
// keeps), all measured in the same run.
//
//   sae_step_bench [reps]             the table above
//   sae_step_bench --calibrate [reps] forward + backward forced dense and forced sparse over a
//                                     density sweep (expansion 32): where the sparse step wins
//   sae_step_bench --ghost [reps]     the sparse step with ghost gradients against the number
//                                     of dead latents (expansion 32, L0 128)
//   sae_step_bench --parts [reps]     the sparse step's parts beside the floor (expansion 64)
//   sae_step_bench --others [reps]    jumprelu and gated forced dense vs sparse (expansion 32)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/sae/adam.h"
#include "core/sae/sae_trainer.h"
#include "core/util/torch_runtime.h"
#include "nlohmann/json.hpp"

using namespace sae::sparse;

namespace {

constexpr int64_t kDIn = 768, kBatch = 4096;

// b_enc for a target L0 on x ~ N(0, I): latent j's pre-activation is N(0, ||W_enc[:, j]||^2),
// so b_enc_j = -z ||W_enc[:, j]|| with z the standard normal's (1 - L0 / d_sae) quantile fires
// each latent on a fraction L0 / d_sae of the tokens. (The eager script sets the same bias.)
void SetBiasForL0(SaeParameters& p, double l0) {
  const double S = static_cast<double>(p.W_enc.size(1));
  const double z =
      std::sqrt(2.0) * at::erfinv(at::full({}, 1.0 - 2.0 * l0 / S, at::kDouble)).item<double>();
  p.b_enc.copy_(p.W_enc.norm(2, {0}) * -z);
}

TrainerOptions StepOptions(Architecture architecture, int64_t d_sae) {
  TrainerOptions o;
  o.sae.architecture = architecture;
  o.sae.d_in = kDIn;
  o.sae.d_sae = d_sae;
  o.sae.k = 32;
  o.lr = 1e-4;
  o.lr_schedule = LrSchedule::kConstant;
  o.l1_coefficient = 8e-5;
  o.train_batch_size = kBatch;
  o.total_steps = 1000;
  return o;
}

// The eager step's median seconds under `python` (0 when it failed); sets *version to its torch.
double EagerSeconds(const std::string& python, const char* arch, int expansion, double l0,
                    int threads, int reps, std::string* version) {
  std::string line = sae::bench::RunAndCaptureLastLine(
      python + " " + sae::bench::SourceDir() + "/bench/reference/sae_step_eager.py --arch " + arch +
      " --expansion " + std::to_string(expansion) + " --l0 " + std::to_string(l0) + " --threads " +
      std::to_string(threads) + " --reps " + std::to_string(reps));
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.contains("seconds")) return 0;
  if (j.contains("torch")) *version = j["torch"].get<std::string>();
  return j["seconds"].get<double>();
}

// Forward + backward (no optimiser) of `sae` on x.
double ForwardBackwardSeconds(const SparseAutoencoder& sae, const at::Tensor& x,
                              const LossOptions& loss, int reps, bool* sparse = nullptr) {
  StepBuffer buffer(sae.params());
  return sae::bench::MedianSeconds(
      [&] {
        ForwardPass pass = sae.Forward(x, loss.dead_mask.defined());
        if (sparse) *sparse = static_cast<bool>(pass.entries);
        at::Tensor sums = SparseAutoencoder::MomentSums(pass) / static_cast<double>(x.size(0));
        sae.Backward(pass, {sums[0], sums[1]}, loss, buffer);
      },
      reps, 1);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int Table(int threads, int reps) {
  const std::string peer = sae::bench::PeerVenvPython();
  std::string old_version = "?", new_version = "?";
  std::printf("%-9s %4s %5s %7s %9s %10s %9s %10s %9s %10s %9s %7s\n", "arch", "exp", "L0",
              "L0 seen", "ours (s)", "1.13 (s)", "vs 1.13", "2.x (s)", "vs 2.x", "floor (s)",
              "/ floor", "path");
  for (int expansion : {32, 64}) {
    const int64_t S = kDIn * expansion;
    // The eager step is dense: its time does not depend on L0 (measured once, at L0 128), under
    // Debian's torch 1.13 and the peer virtual environment's torch 2.x.
    const double eager = EagerSeconds(sae::bench::kDebianPython, "standard", expansion, 128,
                                      threads, reps, &old_version);
    const double eager2 =
        peer.empty() ? 0.0
                     : EagerSeconds(peer, "standard", expansion, 128, threads, reps, &new_version);
    at::Tensor gx = at::randn({kBatch, kDIn}), gw = at::randn({kDIn, S}), gb = at::randn({S});
    // One row: `trainer` stepped on fresh batches, alternating with the floor.
    auto row = [&](const char* arch, SaeTrainer& trainer, double l0, double eager1, double eager2) {
      // A fresh batch every step: Adam's steps on one repeated batch would push its active
      // pre-activations down and L0 with them.
      std::vector<at::Tensor> batches;
      for (int i = 0; i <= reps; ++i) batches.push_back(at::randn({kBatch, kDIn}));
      double seen = 0;
      (void)trainer.Step(batches[0]);  // warm-up
      // The floor (one encoder GEMM of the same shape) and our step alternate, so that both
      // see the same load.
      std::vector<double> ours, floor;
      for (int i = 1; i <= reps; ++i) {
        floor.push_back(Seconds([&] { (void)at::addmm(gb, gx, gw); }));
        ours.push_back(Seconds([&] {
          auto m = trainer.Step(batches[i]);
          if (m.ok()) seen = m->l0;
        }));
      }
      const double o = Median(ours), f = Median(floor);
      const bool sparse = seen / S <= trainer.sae().sparse_step_max_density();
      std::printf("%-9s %4d %5.0f %7.1f %9.3f %10.3f %8.2fx %10.3f %8.2fx %10.3f %8.2fx %7s\n",
                  arch, expansion, l0, seen, o, eager1, o > 0 ? eager1 / o : 0.0, eager2,
                  o > 0 ? eager2 / o : 0.0, f, f > 0 ? o / f : 0.0, sparse ? "sparse" : "dense");
      std::fflush(stdout);
    };
    for (double l0 : {32.0, 128.0, 512.0}) {
      SaeTrainer trainer(StepOptions(Architecture::kStandard, S), nullptr);
      SetBiasForL0(trainer.sae().params(), l0);
      row("standard", trainer, l0, eager, eager2);
    }
    // TopK at k 32 (L0 is k by construction) beside the eager dense formulation: top-k
    // scattered into a dense [B, d_sae] activation, dense decoder matmul, autograd.
    const double topk1 =
        EagerSeconds(sae::bench::kDebianPython, "topk", expansion, 0, threads, reps, &old_version);
    const double topk2 =
        peer.empty() ? 0.0 : EagerSeconds(peer, "topk", expansion, 0, threads, reps, &new_version);
    SaeTrainer topk(StepOptions(Architecture::kTopK, S), nullptr);
    row("topk", topk, 32, topk1, topk2);
  }
  std::printf("1.13: eager step under %s, torch %s\n", sae::bench::kDebianPython,
              old_version.c_str());
  if (peer.empty()) {
    std::printf("2.x: skipped (no peer virtual environment; bash scripts/peer-venv.sh makes it, "
                "or set SAE_PEER_PYTHON)\n");
  } else {
    std::printf("2.x: eager step under %s, torch %s\n", peer.c_str(), new_version.c_str());
  }
  return 0;
}

int Calibrate(int reps) {
  const int64_t S = kDIn * 32;
  std::printf("forward + backward of the standard SAE, expansion 32, forced dense vs sparse\n");
  std::printf("%9s %7s %11s %11s %13s\n", "density", "L0", "dense (s)", "sparse (s)",
              "sparse/dense");
  SparseAutoencoder sae(StepOptions(Architecture::kStandard, S).sae, 1);
  at::Tensor x = at::randn({kBatch, kDIn});
  for (double density : {0.002, 0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15}) {
    SetBiasForL0(sae.params(), density * S);
    LossOptions loss;
    sae.set_sparse_step_max_density(-1);
    const double dense = ForwardBackwardSeconds(sae, x, loss, reps);
    sae.set_sparse_step_max_density(1);
    const double sparse = ForwardBackwardSeconds(sae, x, loss, reps);
    std::printf("%9.3f %7.0f %11.3f %11.3f %12.2fx\n", density, density * S, dense, sparse,
                sparse / dense);
    std::fflush(stdout);
  }
  return 0;
}

// jumprelu and gated at expansion 32, L0 about 128: forward + backward forced dense and sparse.
int Others(int reps) {
  const int64_t S = kDIn * 32;
  std::printf("forward + backward at expansion 32, L0 128, forced dense vs sparse\n");
  std::printf("%-9s %11s %11s %13s\n", "arch", "dense (s)", "sparse (s)", "dense/sparse");
  at::Tensor x = at::randn({kBatch, kDIn});
  for (Architecture a : {Architecture::kJumpReLU, Architecture::kGated}) {
    SparseAutoencoder sae(StepOptions(a, S).sae, 1);
    SaeParameters& p = sae.params();
    if (a == Architecture::kGated) {
      p.b_enc = p.W_enc.new_zeros({S});
      SetBiasForL0(p, 128);
      p.b_gate.copy_(p.b_enc);
      p.b_enc = at::Tensor();
    } else {
      SetBiasForL0(p, 128);
      p.b_enc.add_(p.threshold);  // h > threshold on L0 / d_sae of the tokens
    }
    LossOptions loss;
    sae.set_sparse_step_max_density(-1);
    const double dense = ForwardBackwardSeconds(sae, x, loss, reps);
    sae.set_sparse_step_max_density(1);
    const double sparse = ForwardBackwardSeconds(sae, x, loss, reps);
    std::printf("%-9s %11.3f %11.3f %12.2fx\n", std::string(ArchitectureName(a)).c_str(), dense,
                sparse, dense / sparse);
    std::fflush(stdout);
  }
  return 0;
}

int Ghost(int reps) {
  const int64_t S = kDIn * 32;
  std::printf("sparse forward + backward with ghost gradients, expansion 32, L0 128\n");
  std::printf("%9s %11s %14s\n", "dead", "time (s)", "vs no ghost");
  SparseAutoencoder sae(StepOptions(Architecture::kStandard, S).sae, 1);
  SetBiasForL0(sae.params(), 128);
  sae.set_sparse_step_max_density(1);
  at::Tensor x = at::randn({kBatch, kDIn});
  double base = 0;
  for (int64_t dead : {int64_t{0}, S / 100, S / 10, S / 2, S}) {
    LossOptions loss;
    loss.use_ghost_grads = true;
    loss.dead_mask = at::zeros({S}, at::kBool);
    loss.dead_mask.narrow(0, 0, dead).fill_(true);
    const double t = ForwardBackwardSeconds(sae, x, loss, reps);
    if (dead == 0) base = t;
    std::printf("%9lld %11.3f %13.2fx\n", (long long)dead, t, t / base);
    std::fflush(stdout);
  }
  return 0;
}

// Where the sparse step's time goes (expansion 64, L0 128): the floor, the forward, the
// backward and the whole trainer step (the rest: Adam, the decoder's parallel-gradient removal
// and the dead-latent counters, all dense over the parameters).
int Parts(int reps) {
  const int64_t S = kDIn * 64;
  SaeTrainer trainer(StepOptions(Architecture::kStandard, S), nullptr);
  SetBiasForL0(trainer.sae().params(), 128);
  at::Tensor x = at::randn({kBatch, kDIn});
  const SparseAutoencoder& sae = trainer.sae();
  const double floor = sae::bench::MedianSeconds(
      [&] { (void)at::addmm(sae.params().b_enc, x, sae.params().W_enc); }, reps, 1);
  ForwardPass pass;
  const double forward =
      sae::bench::MedianSeconds([&] { pass = sae.Forward(x, false); }, reps, 1);
  StepBuffer buffer(sae.params());
  at::Tensor sums = SparseAutoencoder::MomentSums(pass) / static_cast<double>(kBatch);
  const double backward = sae::bench::MedianSeconds(
      [&] { sae.Backward(pass, {sums[0], sums[1]}, LossOptions(), buffer); }, reps, 1);
  SparseAutoencoder copy(sae.options(), sae.params().Clone());
  Adam adam(copy.params().List());
  const double adam_s = sae::bench::MedianSeconds(
      [&] { adam.Step(copy.params().List(), buffer.gradients(), 1e-4); }, reps, 1);
  at::Tensor grad_W_dec = buffer.W_dec;
  const double parallel = sae::bench::MedianSeconds(
      [&] { copy.RemoveGradientParallelToDecoder(grad_W_dec); }, reps, 1);
  const double normalize =
      sae::bench::MedianSeconds([&] { copy.NormalizeDecoderRows(); }, reps, 1);
  const double step = sae::bench::MedianSeconds([&] { (void)trainer.Step(x); }, reps, 1);
  std::printf("Adam %.3f s, decoder parallel-gradient removal %.3f s, decoder row norms %.3f s\n",
              adam_s, parallel, normalize);
  std::printf("expansion 64, L0 128 (%s step): encoder GEMM %.3f s, forward %.3f s (%.2fx the "
              "GEMM), backward %.3f s, whole step %.3f s (%.2fx the GEMM)\n",
              pass.entries ? "sparse" : "dense", floor, forward, forward / floor, backward, step,
              step / floor);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  std::string mode;
  int arg = 1;
  if (argc > arg && argv[arg][0] == '-') mode = argv[arg++];
  const int reps = argc > arg ? std::atoi(argv[arg]) : 3;
  std::printf("SAE step benchmark: d_in %lld, batch %lld, float32, %d threads, median of %d; "
              "sparse step at density <= %.3f\n",
              (long long)kDIn, (long long)kBatch, threads, reps, kSparseStepMaxDensity);
  if (mode == "--calibrate") return Calibrate(reps);
  if (mode == "--ghost") return Ghost(reps);
  if (mode == "--parts") return Parts(reps);
  if (mode == "--others") return Others(reps);
  if (!mode.empty()) {
    std::fprintf(stderr, "unknown option %s: use --calibrate, --ghost, --parts, --others or none\n",
                 mode.c_str());
    return 2;
  }
  return Table(threads, reps);
}
