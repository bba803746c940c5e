// The data plane's throughput on this machine:
//
//  1. Loopback stream capacity, d_in 768, f32 and bf16: a real sae-activation-server pipeline
//     in-process (GPT-2-small-shaped model hooked at blocks.0.hook_resid_pre, whose forward is
//     the embedding alone, so the model is not the bottleneck; mixing buffer, encoding, gRPC over
//     127.0.0.1) read by the trainer's own reader (ActivationStreamReader, decoding to float32),
//     beside a plain memcpy of the same bytes.
//  2. That capacity beside what GPT-2 small can generate here (blocks.2.hook_resid_pre, the
//     seed's recipe, and all 12 blocks). Goal: at least 10x.
//  3. End to end: sae-activation-server + sae-trainer (separate processes, one trainer) beside
//     RunLocalTraining (what `saectl train` runs) on the same config, tokens/s and their ratio.
//     Goal: the distributed path within 15% of the single process on the same cores.
//
//   build/bench/stream_bench [--quick] [--e2e-tokens N]   (default 196608 tokens, 48 steps)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_util.h"
#include "core/model/gpt2_model.h"
#include "core/training/local_training.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "core/util/torch_runtime.h"
#include "core/wire/run_digest.h"
#include "nlohmann/json.hpp"
#include "services/activation_server/activation_server.h"
#include "services/common/large_allocations.h"
#include "services/trainer/activation_stream.h"
#include "support/child_process.h"
#include "support/ports.h"
#include "support/temp_dir.h"
#include "support/tiny_run.h"

namespace sae::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// A GPT-2-small-shaped model with random weights: the shared cache's, or one written here.
std::string GptSmallFolder(const std::string& scratch) {
  const char* home = getenv("HOME");
  const std::string cached = std::string(home != nullptr ? home : "/root") +
                             "/.cache/sae-service/models/gpt2-small-random";
  if (std::filesystem::exists(cached + "/model.safetensors")) return cached;
  const std::string folder = scratch + "/gpt2-small";
  auto config = model::Gpt2Preset("gpt2-small");
  if (!model::SaveGpt2(model::RandomGpt2Weights(*config, 0), folder).ok()) return "";
  return folder;
}

std::string RunYaml(const std::string& model, const std::string& tokens, const std::string& hook,
                    int64_t batch, int64_t total_tokens, const std::string& extra = "") {
  return absl::StrCat("model_path: ", model, "\ndataset_path: ", tokens, "\nhook_point: ", hook,
                      "\ncontext_size: 128\nstore_batch_size: 32\nn_batches_in_buffer: 8\n",
                      "train_batch_size: ", batch, "\ntotal_training_tokens: ", total_tokens,
                      "\nexpansion_factor: 4\nlr: 0.0004\nl1_coefficient: 0.00008\n",
                      "lr_warm_up_steps: 10\nb_dec_init_method: mean\n",
                      "wandb_log_frequency: 1000\n", extra);
}

struct StreamFigures {
  double activations_per_second = 0;
  double megabytes_per_second = 0;  // payload bytes on the wire
};

// Section 1: the stream's capacity for one dtype.
StreamFigures MeasureStream(const config::RunConfig& base, config::DType dtype, int batches) {
  config::RunConfig config = base;
  config.wire_dtype = dtype;
  activation_server::ActivationServerOptions options;
  options.config = config;
  options.listen = "127.0.0.1:0";
  auto server = activation_server::ActivationServer::Start(options);
  if (!server.ok()) {
    std::printf("cannot start the server: %s\n", server.status().ToString().c_str());
    return {};
  }
  config::RunConfig resolved = config;
  (void)training::ResolveRunConfig(resolved);
  trainer::ActivationStreamOptions stream;
  stream.address = absl::StrCat("127.0.0.1:", (*server)->port());
  stream.run_id = wire::DefaultRunId(resolved);
  stream.config_digest = wire::RunConfigDigest(resolved);
  stream.session = "bench";
  stream.wire_dtype = dtype;
  stream.batch_size = resolved.train_batch_size;
  stream.d_in = *resolved.d_in;
  stream.lease = 4;
  const int warmup = 4;
  trainer::PrefetchQueue queue(8, warmup + batches);
  auto reader = trainer::ActivationStreamReader::Start(stream, &queue, nullptr);
  if (!reader.ok()) return {};
  for (int i = 0; i < warmup; ++i) (void)queue.Pop();
  const int64_t bytes_before = (*reader)->stats().bytes;
  const auto start = Clock::now();
  for (int i = 0; i < batches; ++i) {
    auto batch = queue.Pop();
    if (!batch.ok()) {
      std::printf("stream failed: %s\n", batch.status().ToString().c_str());
      return {};
    }
  }
  const double seconds = Seconds(start);
  const int64_t bytes = (*reader)->stats().bytes - bytes_before;
  queue.Close();
  (*reader)->Stop();
  (*server)->Shutdown(absl::Seconds(1));
  StreamFigures f;
  f.activations_per_second = static_cast<double>(batches) * resolved.train_batch_size / seconds;
  f.megabytes_per_second = static_cast<double>(bytes) / seconds / 1e6;
  return f;
}

// memcpy of `bytes`, MB/s (median of 5).
double MemcpyMegabytesPerSecond(size_t bytes) {
  std::vector<char> from(bytes, 1), to(bytes, 0);
  const double s = MedianSeconds([&] { std::memcpy(to.data(), from.data(), bytes); }, 5, 2);
  return static_cast<double>(bytes) / s / 1e6;
}

// Section 2: GPT-2 small forward, tokens/s for [32, 128] batches up to `hook`.
double GenerationTokensPerSecond(const std::string& model_folder, const std::string& hook, int reps,
                                 int warmup) {
  auto model = model::Gpt2Model::Load(model_folder, {});
  if (!model.ok()) return 0;
  at::Tensor tokens = at::randint(0, 50257, {32, 128}, at::kLong);
  model::ForwardRequest request;
  request.capture = {*model::ParseHookPoint(hook, (*model)->config().n_layer)};
  const double s = MedianSeconds([&] { (void)(*model)->Forward(tokens, request); }, reps, warmup);
  return 32 * 128 / s;
}

struct EndToEnd {
  double wall_tokens_per_second = 0;  // tokens / (launch to final SAE)
  double loop_tokens_per_second = 0;  // tokens / training loop time
  double wait_seconds = 0;
  bool ok = false;
};

// Section 3a: the single process.
EndToEnd LocalRun(const std::string& yaml, const std::string& dir, int threads) {
  ConfigureTorchThreads(threads);
  auto config = config::ParseRunConfig(yaml, "run.yaml");
  training::LocalTrainingOptions options;
  options.output_dir = dir;
  const auto start = Clock::now();
  auto result = training::RunLocalTraining(*config, options);
  EndToEnd e;
  if (!result.ok()) {
    std::printf("local training failed: %s\n", result.status().ToString().c_str());
    return e;
  }
  e.wall_tokens_per_second = static_cast<double>(result->tokens) / Seconds(start);
  e.loop_tokens_per_second = result->tokens_per_second;
  e.ok = true;
  return e;
}

// Section 3b: one server and one trainer, as processes of the build's binaries.
EndToEnd DistributedRun(const std::string& bin, const std::string& config_path,
                        const std::string& dir, int server_threads, int trainer_threads) {
  using support::ChildProcess;
  EndToEnd e;
  std::filesystem::create_directories(dir);
  const int port = support::FreeLoopbackPort();
  const auto start = Clock::now();
  ChildProcess server({bin + "/sae-activation-server", "--config", config_path, "--listen",
                       absl::StrCat("127.0.0.1:", port), "--metrics-port", "-1", "--threads",
                       std::to_string(server_threads)},
                      dir + "/server.log");
  ChildProcess trainer({bin + "/sae-trainer", "--config", config_path, "--servers",
                        absl::StrCat("127.0.0.1:", port), "--output", dir + "/out",
                        "--metrics-port", "-1", "--threads", std::to_string(trainer_threads)},
                       dir + "/trainer.log");
  if (!trainer.WaitForExit(std::chrono::minutes(30)) || trainer.exit_code() != 0) {
    std::printf("distributed run failed:\n%s\n%s\n", trainer.Log().c_str(), server.Log().c_str());
    return e;
  }
  const double wall = Seconds(start);
  server.Stop();
  nlohmann::json summary = nlohmann::json::parse(
      support::ReadWholeFile(dir + "/out/summary.json"), nullptr, false);
  if (summary.is_discarded()) return e;
  e.wall_tokens_per_second = summary["tokens"].get<double>() / wall;
  e.loop_tokens_per_second = summary["tokens_per_second"];
  e.wait_seconds = summary["wait_seconds"];
  e.ok = true;
  return e;
}

std::string BinaryFolder() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "build/bin";
  self[n] = '\0';
  return (std::filesystem::path(self).parent_path().parent_path() / "bin").string();
}

}  // namespace
}  // namespace sae::bench

int main(int argc, char** argv) {
  using namespace sae;
  using namespace sae::bench;
  UsePassiveOpenMpWaits(argv);
  // The same allocator settings as the service binaries, so the single-process baseline below
  // gets them too.
  service::ReuseLargeAllocations();
  bool quick = false;
  int64_t e2e_tokens = 4096 * 48;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--quick") quick = true;
    if (std::string(argv[i]) == "--e2e-tokens" && i + 1 < argc) e2e_tokens = std::atoll(argv[++i]);
  }
  if (quick) e2e_tokens = 4096 * 4;
  const int threads = ConfigureTorchThreads(0);
  support::TempDir scratch("sae_stream_bench");
  const std::string model = GptSmallFolder(scratch.path());
  const std::string tokens = scratch.path() + "/tokens.bin";
  if (model.empty() || !support::WriteRandomTokens(tokens, 40000, 7).ok()) {
    std::printf("cannot prepare the model or the tokens\n");
    return 1;
  }
  std::printf("Data-plane benchmark on %d cores (%d LibTorch threads)\n\n",
              static_cast<int>(std::thread::hardware_concurrency()), threads);

  // 1. Stream capacity.
  const int64_t batch = 4096;
  auto base = config::ParseRunConfig(
      RunYaml(model, tokens, "blocks.0.hook_resid_pre", batch, batch * 1000), "run.yaml");
  if (!base.ok()) {
    std::printf("%s\n", base.status().ToString().c_str());
    return 1;
  }
  const int batches = quick ? 16 : 48;
  std::printf(
      "1. Loopback stream, d_in 768, batches of %lld activations (server pipeline + "
      "gRPC + trainer reader, one process)\n",
      static_cast<long long>(batch));
  std::printf("   %-6s %16s %12s %18s %10s\n", "dtype", "activations/s", "MB/s", "memcpy MB/s",
              "of memcpy");
  double f32_rate = 0;
  for (config::DType dtype : {config::DType::kFloat32, config::DType::kBFloat16}) {
    StreamFigures f = MeasureStream(*base, dtype, batches);
    const size_t bytes =
        static_cast<size_t>(batch) * 768 * (dtype == config::DType::kFloat32 ? 4 : 2);
    const double memcpy_rate = MemcpyMegabytesPerSecond(bytes);
    std::printf("   %-6s %16.0f %12.0f %18.0f %9.1f%%\n",
                std::string(config::ToString(dtype)).c_str(), f.activations_per_second,
                f.megabytes_per_second, memcpy_rate,
                memcpy_rate > 0 ? 100 * f.megabytes_per_second / memcpy_rate : 0.0);
    if (dtype == config::DType::kFloat32) f32_rate = f.activations_per_second;
  }

  // 2. What GPT-2 small generates here.
  std::printf(
      "\n2. GPT-2 small generation on this machine ([32, 128] tokens per forward, median of 5), and "
      "the stream's f32 capacity as a multiple of it (goal >= 10x)\n");
  for (auto [label, hook] : {std::pair{"to blocks.2.hook_resid_pre", "blocks.2.hook_resid_pre"},
                             std::pair{"all 12 blocks", "blocks.11.hook_resid_post"}}) {
    // The median of 5 forwards (1 in --quick), after a warm-up one.
    const double rate = GenerationTokensPerSecond(model, hook, quick ? 1 : 5, quick ? 0 : 1);
    std::printf("   %-28s %10.0f tokens/s   stream capacity = %.0fx\n", label, rate,
                rate > 0 ? f32_rate / rate : 0.0);
  }

  // 3. End to end.
  // No evaluation at the end: the single process would run it inside the measured time (several
  // minutes of GPT-2 small forwards), the distributed run after its final SAE.
  const std::string e2e_yaml =
      RunYaml(model, tokens, "blocks.2.hook_resid_pre", batch, e2e_tokens, "n_eval_batches: 0\n");
  const std::string e2e_config = scratch.path() + "/e2e.yaml";
  std::ofstream(e2e_config) << e2e_yaml;
  std::printf(
      "\n3. End to end: GPT-2 small shape, blocks.2.hook_resid_pre, d_sae 3072, batch "
      "%lld, %lld tokens\n",
      static_cast<long long>(batch), static_cast<long long>(e2e_tokens));
  // Both processes share the same cores. The server fills its mixing buffer alone while the
  // trainer waits, so it gets every core; the trainer's step then runs beside generation.
  struct Split {
    int server, trainer;
  };
  const std::vector<Split> splits =
      quick ? std::vector<Split>{{2, 1}} : std::vector<Split>{{2, 1}, {2, 2}};
  // The machine may be shared: the runs alternate, and each configuration keeps its best.
  const int rounds = quick ? 1 : 2;
  EndToEnd local;
  std::vector<EndToEnd> distributed(splits.size());
  for (int round = 0; round < rounds; ++round) {
    EndToEnd l = LocalRun(e2e_yaml, absl::StrCat(scratch.path(), "/local", round), 0);
    if (l.wall_tokens_per_second > local.wall_tokens_per_second) local = l;
    for (size_t i = 0; i < splits.size(); ++i) {
      EndToEnd d = DistributedRun(BinaryFolder(), e2e_config,
                                  absl::StrCat(scratch.path(), "/dist", i, "_", round),
                                  splits[i].server, splits[i].trainer);
      if (d.wall_tokens_per_second > distributed[i].wall_tokens_per_second) distributed[i] = d;
    }
  }
  std::printf("   %-44s %10s %10s %12s %10s\n",
              ("(best of " + std::to_string(rounds) + ")").c_str(), "tokens/s", "loop tok/s",
              "data wait s", "vs local");
  std::printf("   %-44s %10.0f %10.0f %12s %10s\n", "single process (RunLocalTraining, 2 threads)",
              local.wall_tokens_per_second, local.loop_tokens_per_second, "-", "1.00");
  for (size_t i = 0; i < splits.size(); ++i) {
    const EndToEnd& d = distributed[i];
    const std::string label = absl::StrCat(
        "1 server (", splits[i].server, " threads) + 1 trainer (", splits[i].trainer, " threads)");
    std::printf("   %-44s %10.0f %10.0f %12.1f %10.2f\n", label.c_str(), d.wall_tokens_per_second,
                d.loop_tokens_per_second, d.wait_seconds,
                local.wall_tokens_per_second > 0
                    ? d.wall_tokens_per_second / local.wall_tokens_per_second
                    : 0.0);
  }
  std::printf(
      "   (tokens/s: tokens over the wall time from start to final SAE, model loading "
      "included; goal: ratio >= 0.85)\n");
  return 0;
}
