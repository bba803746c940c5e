// The corpus a GPT-2 trains on: a dataset's documents split into a training part and a held-out
// part, each packed into contexts, and the order in which training contexts are served.
#ifndef SAE_CORE_MODEL_TRAINING_CORPUS_H_
#define SAE_CORE_MODEL_TRAINING_CORPUS_H_

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tokenizer/gpt2_tokenizer.h"

namespace sae::model {

struct TrainingCorpusOptions {
  std::string dataset_path;  // anything core/data reads (docs/data.md); text is tokenised
  int64_t context_size = 128;
  // The dataset's held-out documents (data::DatasetOptions::held_out_fraction: each document is
  // held out by a hash of where it starts, data::Dataset::IsHeldOut; read through
  // Dataset::kHeldOutShard), which the model never trains on. The default equals run.yaml's
  // eval_held_out_fraction and the rule is the same, so an SAE's evaluations on the same dataset
  // read documents the model never saw. In (0, 0.5].
  double held_out_fraction = 0.05;
  int32_t vocab_size = 50257;
  std::string text_document_separator = "<|endoftext|>";
};

// The whole corpus in memory (the fortunes corpus is ~0.7M tokens, 3 MB of int32).
//
// Both parts are packed with the project's rule (core/data/context_packing.h: BOS before every
// document, contexts of exactly context_size ids, an overflowing document continues after
// another BOS); the ids of an incomplete last context are dropped.
class TrainingCorpus {
 public:
  // Reads every document once (epoch 0 of the training part and of the held-out part).
  // `tokenizer` is needed for text and may be null for token data. InvalidArgument when either
  // part has no full context (too little data for context_size or for the held-out fraction),
  // plus the errors of data::Dataset::Open and data::DocumentStream::Next.
  static absl::StatusOr<TrainingCorpus> Load(const TrainingCorpusOptions& options,
                                             const tokenizer::Gpt2Tokenizer* tokenizer);

  // Builds a corpus from documents already tokenised and split (tests, benchmarks);
  // options.held_out_fraction is not used.
  static absl::StatusOr<TrainingCorpus> FromDocuments(
      const TrainingCorpusOptions& options,
      const std::vector<std::vector<int32_t>>& train_documents,
      const std::vector<std::vector<int32_t>>& held_out_documents);

  const at::Tensor& train() const { return train_; }        // [N_train, T] int64
  const at::Tensor& held_out() const { return held_out_; }  // [N_held_out, T] int64
  int64_t documents() const { return documents_; }
  int64_t held_out_documents() const { return held_out_documents_; }
  const TrainingCorpusOptions& options() const { return options_; }

  // Entropy (nats) of the unigram distribution of the predicted ids (positions 1..T-1 of every
  // context) of the training part, and of the held-out part. The held-out one is the smallest
  // loss any model that ignores context can reach on the held-out part.
  double train_unigram_entropy() const { return train_unigram_entropy_; }
  double held_out_unigram_entropy() const { return held_out_unigram_entropy_; }

  // A stable hash of the packed training and held-out contexts; checkpoints carry it.
  uint64_t fingerprint() const { return fingerprint_; }

  // Contexts [first, first + count) of the endless stream of training contexts: epoch e is a
  // permutation of all training contexts drawn from std::mt19937_64(seed + e) (Fisher-Yates
  // with rejection sampling, the same on every standard library). Returns [count, T] int64.
  at::Tensor Contexts(int64_t first, int64_t count, uint64_t seed) const;

 private:
  TrainingCorpus() = default;

  TrainingCorpusOptions options_;
  at::Tensor train_, held_out_;
  int64_t documents_ = 0, held_out_documents_ = 0;
  double train_unigram_entropy_ = 0, held_out_unigram_entropy_ = 0;
  uint64_t fingerprint_ = 0;
  // The permutation of the epoch last served (Contexts is called from one thread).
  mutable int64_t permutation_epoch_ = -1;
  mutable uint64_t permutation_seed_ = 0;
  mutable std::vector<int64_t> permutation_;
};

}  // namespace sae::model

#endif  // SAE_CORE_MODEL_TRAINING_CORPUS_H_
