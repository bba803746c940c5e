// saectl features's pass: tokens/s of ComputeFeatureReport's pass (forward to the hook, the SAE
// encoder written feature-major, the per-feature statistics: counts, histogram, top-K contexts,
// interval samples) beside its floor, a plain forward to the hook plus the SAE encoder
// (token-major, ReLU) on the same tokens, measured in the same run and alternated. Then the
// one-off costs after the pass (logit effects through the unembedding, decoder neighbours).
// Usage: features_bench [reps] [preset] [d_sae] [contexts]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/features/feature_pass.h"
#include "core/model/gpt2_model.h"
#include "core/util/torch_runtime.h"

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  const int threads = sae::ConfigureTorchThreads(0);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const std::string preset = argc > 2 ? argv[2] : "gpt2-small";
  const int64_t d_sae_arg = argc > 3 ? std::atoll(argv[3]) : 0;
  const int64_t n_contexts = argc > 4 ? std::atoll(argv[4]) : 16;
  const int64_t T = 128;

  sae::model::Gpt2Config config = *sae::model::Gpt2Preset(preset);
  const sae::model::Gpt2Weights weights = sae::model::RandomGpt2Weights(config, 0);
  auto model = *sae::model::Gpt2Model::FromWeights(
      weights, {sae::model::Processing::kTransformerLens, at::kFloat});
  const int layer = config.n_layer / 2;
  sae::eval::SaeForEval sae;
  sae.hook_name = "blocks." + std::to_string(layer) + ".hook_resid_pre";
  sae.options.d_in = config.n_embd;
  sae.options.d_sae = d_sae_arg > 0 ? d_sae_arg : 32 * config.n_embd;
  at::manual_seed(1);
  const at::Tensor contexts = at::randint(0, config.vocab_size, {n_contexts, T}, at::kLong);
  const sae::model::HookPoint hook = *sae::model::ParseHookPoint(sae.hook_name, config.n_layer);
  sae::model::ForwardRequest capture;
  capture.capture.push_back(hook);
  {
    sae::sparse::SparseAutoencoder init(sae.options, 0);
    sae.params = init.params();
    // A sparse code as a trained SAE's: each feature's bias puts it at its 99.5th percentile
    // on the first context, so about 0.5% of the activations are non-zero (L0 ~ d_sae / 200).
    const at::Tensor x = model->Forward(contexts.narrow(0, 0, 1), capture)
                             ->activations.at(sae.hook_name)
                             .reshape({-1, config.n_embd});
    const at::Tensor h = at::matmul(x - sae.params.b_dec, sae.params.W_enc);
    sae.params.b_enc = -h.quantile(0.995, 0).contiguous();
  }
  const int64_t tokens = n_contexts * T;
  std::printf("saectl features benchmark: %s, SAE %lld x %lld at %s, %lld contexts of %lld "
              "tokens, float32, %d threads\n",
              preset.c_str(), static_cast<long long>(sae.options.d_in),
              static_cast<long long>(sae.options.d_sae), sae.hook_name.c_str(),
              static_cast<long long>(n_contexts), static_cast<long long>(T), threads);

  sae::features::FeaturePassOptions pass_only;
  pass_only.logit_k = 0;
  pass_only.neighbours = 0;
  double last_pass_seconds = 0;
  double fired_fraction = 0;
  auto features_once = [&] {
    auto r = sae::features::ComputeFeatureReport(*model, weights, sae, contexts, {}, pass_only);
    if (!r.ok()) {
      std::fprintf(stderr, "features failed: %s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
    last_pass_seconds = r->pass_seconds;
    int64_t fired = 0;
    for (const auto& s : r->stats) fired += s.count;
    fired_fraction = static_cast<double>(fired) / (static_cast<double>(tokens) * sae.options.d_sae);
  };
  const sae::sparse::SparseAutoencoder sae_model(sae.options, sae.params);
  // The floor: the same batches as the pass (ComputeFeatureReport's default batch size).
  const int64_t per_batch = std::min<int64_t>(
      64, std::max<int64_t>(1, (int64_t{256} << 20) / (sae.options.d_sae * T * 4)));
  auto floor_once = [&] {
    for (int64_t lo = 0; lo < n_contexts; lo += per_batch) {
      const int64_t b = std::min(per_batch, n_contexts - lo);
      auto r = model->Forward(contexts.narrow(0, lo, b), capture);
      const at::Tensor x = r->activations.at(sae.hook_name).reshape({-1, config.n_embd});
      (void)sae_model.Encode(x);
    }
  };
  // The floor with the encoder written feature-major, as the pass does (no statistics).
  auto feature_major_once = [&] {
    for (int64_t lo = 0; lo < n_contexts; lo += per_batch) {
      const int64_t b = std::min(per_batch, n_contexts - lo);
      auto r = model->Forward(contexts.narrow(0, lo, b), capture);
      const at::Tensor x = r->activations.at(sae.hook_name).reshape({-1, config.n_embd});
      (void)sae::features::EncodeFeatureMajor(sae_model, x, at::Tensor());
    }
  };
  floor_once();  // warm-up
  std::vector<double> pass_times, floor_times, major_times;
  for (int i = 0; i < reps; ++i) {
    (void)sae::bench::MedianSeconds(features_once, 1, 0);
    pass_times.push_back(last_pass_seconds);
    floor_times.push_back(sae::bench::MedianSeconds(floor_once, 1, 0));
    major_times.push_back(sae::bench::MedianSeconds(feature_major_once, 1, 0));
  }
  std::sort(pass_times.begin(), pass_times.end());
  std::sort(floor_times.begin(), floor_times.end());
  std::sort(major_times.begin(), major_times.end());
  const double pass_s = pass_times[pass_times.size() / 2];
  const double floor_s = floor_times[floor_times.size() / 2];
  const double major_s = major_times[major_times.size() / 2];
  std::printf("(%.2f%% of feature activations non-zero)\n", 100 * fired_fraction);
  std::printf("\n%-52s %12s %10s\n", "", "tokens/s", "seconds");
  std::printf("%-52s %12.0f %10.3f\n", "saectl features pass (ComputeFeatureReport)",
              tokens / pass_s, pass_s);
  std::printf("%-52s %12.0f %10.3f\n", "floor: forward to the hook + SAE encoder", tokens / floor_s,
              floor_s);
  std::printf("%-52s %12.0f %10.3f\n", "  (floor with the encoder written feature-major)",
              tokens / major_s, major_s);
  std::printf("features / floor: %.2f of the floor's throughput\n", floor_s / pass_s);

  // The one-off costs, independent of the number of tokens.
  sae::features::FeaturePassOptions full;
  full.collector.top_k = 1;
  auto one = sae::features::ComputeFeatureReport(*model, weights, sae, contexts.narrow(0, 0, 1),
                                                 {}, full);
  if (one.ok()) {
    std::printf("once per SAE: logit effects %.1f s, decoder neighbours %.1f s (d_sae %lld, "
                "vocabulary %lld)\n",
                one->logits_seconds, one->neighbours_seconds,
                static_cast<long long>(sae.options.d_sae),
                static_cast<long long>(config.vocab_size));
  }
  return 0;
}
