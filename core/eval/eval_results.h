// An SAE evaluation's sums and the metrics they give, with SAELens's names and grouping.
//
// Every metric is a ratio of sums over all evaluated positions or tokens (docs/evals.md), so
// EvalSums of any split of the contexts into batches, added together, give exactly the metrics
// of one pass over all of them (up to float64 rounding), and sums from several machines can be
// added the same way.
#ifndef SAE_CORE_EVAL_EVAL_RESULTS_H_
#define SAE_CORE_EVAL_EVAL_RESULTS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace sae::eval {

// Sums over the evaluated contexts. float64 throughout.
struct EvalSums {
  int64_t contexts = 0;
  int64_t context_size = 0;

  // Next-token cross-entropy -log p(t_{i+1}), positions 0..T-2 of every context.
  int64_t ce_positions = 0;
  double ce_clean = 0, ce_sae = 0, ce_ablation = 0;

  // KL(clean || other) of the next-token distributions, positions 0..T-1.
  int64_t kl_positions = 0;
  double kl_sae = 0, kl_ablation = 0;

  // Over the SAE's input tokens x [d_in] and reconstructions x_hat (one per position).
  int64_t tokens = 0;
  double squared_error = 0;     // sum ||x - x_hat||^2
  double squared_norm_in = 0;   // sum ||x||^2
  at::Tensor input_sum;         // [d_in] sum x (for sum ||x - mean x||^2)
  double cossim = 0;            // sum x.x_hat / (||x|| ||x_hat||)
  double norm_in = 0;           // sum ||x||
  double norm_out = 0;          // sum ||x_hat||
  double norm_ratio = 0;        // sum ||x_hat|| / ||x||
  double squared_norm_out = 0;  // sum ||x_hat||^2
  double dot = 0;               // sum x . x_hat
  double l0 = 0;                // sum of active latents per token
  double l1 = 0;                // sum of |f| per token
  at::Tensor firing_counts;     // [d_sae] tokens on which each latent fired (f > 0)

  // Adds `other` (sums of other contexts of the same SAE and context size).
  void Add(const EvalSums& other);
};

struct EvalResults {
  // model_performance_preservation
  double ce_loss_without_sae = 0, ce_loss_with_sae = 0, ce_loss_with_ablation = 0;
  double ce_loss_score = 0;  // (abl - sae) / (abl - clean)
  // model_behavior_preservation
  double kl_div_with_sae = 0, kl_div_with_ablation = 0;
  double kl_div_score = 0;  // (kl_abl - kl_sae) / kl_abl
  // reconstruction_quality
  double mse = 0;                 // mean over tokens and dimensions of (x - x_hat)^2
  double explained_variance = 0;  // 1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2
  double cossim = 0;
  // shrinkage
  double l2_norm_in = 0, l2_norm_out = 0, l2_ratio = 0;
  double relative_reconstruction_bias = 0;  // mean ||x_hat||^2 / mean x.x_hat
  // sparsity
  double l0 = 0, l1 = 0;
  int64_t d_sae = 0;
  int64_t dead_features = 0;   // never fired
  int64_t dense_features = 0;  // fired on more than 10% of the tokens
  at::Tensor feature_density;  // [d_sae] fraction of tokens each latent fired on (float64)
  // token_stats
  int64_t contexts = 0, context_size = 0;
  int64_t ce_positions = 0, kl_positions = 0, sae_tokens = 0;
};

// A feature is dense above this firing frequency.
inline constexpr double kDenseFeatureFrequency = 0.1;

EvalResults ResultsFromSums(const EvalSums& sums);

// {"model_performance_preservation": {...}, "model_behavior_preservation": {...},
//  "reconstruction_quality": {...}, "shrinkage": {...}, "sparsity": {...},
//  "token_stats": {...}}: SAELens's groups and names, plus the feature counts and token counts
// this project adds. NaN (e.g. a score over a zero denominator) becomes null.
nlohmann::json ToJson(const EvalResults& results);

// The results ToJson wrote (for example sent by the machine that evaluated): every group and
// metric ToJson writes must be there (null reads as NaN); feature_density stays undefined.
// InvalidArgument naming the missing or mistyped field.
absl::StatusOr<EvalResults> EvalResultsFromJson(const nlohmann::json& json);

// The same numbers for people: grouped, aligned, with a one-line reading of each score.
std::string FormatEvalTable(const EvalResults& results);

}  // namespace sae::eval

#endif  // SAE_CORE_EVAL_EVAL_RESULTS_H_
