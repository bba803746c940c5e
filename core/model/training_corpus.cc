#include "core/model/training_corpus.h"

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/data/context_packing.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "core/util/status.h"

namespace sae::model {
namespace {

// Uniform in [0, n) from a 64-bit engine, by rejection (no modulo bias, library-independent).
uint64_t UniformBelow(std::mt19937_64& engine, uint64_t n) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - (std::numeric_limits<uint64_t>::max() % n + 1) % n;
  uint64_t x;
  do {
    x = engine();
  } while (x > limit);
  return x % n;
}

// [N,T] int64 tensor of the contexts.
at::Tensor ToTensor(const std::vector<std::vector<int32_t>>& contexts, int64_t T) {
  at::Tensor t = at::empty({static_cast<int64_t>(contexts.size()), T}, at::kLong);
  int64_t* out = t.data_ptr<int64_t>();
  for (const std::vector<int32_t>& c : contexts) {
    for (int32_t id : c) *out++ = id;
  }
  return t;
}

// Entropy (nats) of the ids at positions 1..T-1 of `contexts` [N,T].
double UnigramEntropy(const at::Tensor& contexts, int32_t vocab_size) {
  at::Tensor targets = contexts.narrow(1, 1, contexts.size(1) - 1).reshape({-1});
  at::Tensor counts = at::bincount(targets, {}, vocab_size).to(at::kDouble);
  at::Tensor p = counts / counts.sum();
  at::Tensor nonzero = p.masked_select(p > 0);
  return -(nonzero * nonzero.log()).sum().item<double>();
}

uint64_t Fnv1a(const at::Tensor& t, uint64_t hash) {
  const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
  const size_t n = t.numel() * t.element_size();
  for (size_t i = 0; i < n; ++i) {
    hash ^= bytes[i];
    hash *= 1099511628211ULL;
  }
  return hash;
}

// Every document of one pass over `shard` (epoch 0).
absl::StatusOr<std::vector<std::vector<int32_t>>> ReadShard(
    const std::shared_ptr<const data::Dataset>& dataset, uint32_t shard) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<data::DocumentStream> stream,
                       data::DocumentStream::Open(dataset, shard, 1));
  std::vector<std::vector<int32_t>> documents;
  data::Document document;
  while (true) {
    SAE_ASSIGN_OR_RETURN(bool has_document, stream->NextOfThisEpoch(&document));
    if (!has_document) return documents;
    std::vector<int32_t> ids;
    document.tokens.AppendTo(0, document.tokens.size(), &ids);
    documents.push_back(std::move(ids));
  }
}

}  // namespace

absl::StatusOr<TrainingCorpus> TrainingCorpus::Load(const TrainingCorpusOptions& options,
                                                    const tokenizer::Gpt2Tokenizer* tokenizer) {
  if (!(options.held_out_fraction > 0 && options.held_out_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the held-out fraction must be in (0, 0.5], got ", options.held_out_fraction));
  }
  data::DatasetOptions dataset_options;
  dataset_options.dataset_path = options.dataset_path;
  dataset_options.context_size = options.context_size;
  dataset_options.vocab_size = options.vocab_size;
  dataset_options.text_document_separator = options.text_document_separator;
  dataset_options.held_out_fraction = options.held_out_fraction;
  SAE_ASSIGN_OR_RETURN(std::shared_ptr<const data::Dataset> dataset,
                       data::Dataset::Open(dataset_options, tokenizer));
  SAE_ASSIGN_OR_RETURN(auto train, ReadShard(dataset, 0));
  SAE_ASSIGN_OR_RETURN(auto held_out, ReadShard(dataset, data::Dataset::kHeldOutShard));
  return FromDocuments(options, train, held_out);
}

absl::StatusOr<TrainingCorpus> TrainingCorpus::FromDocuments(
    const TrainingCorpusOptions& options, const std::vector<std::vector<int32_t>>& train_docs,
    const std::vector<std::vector<int32_t>>& held_docs) {
  if (options.context_size < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("context size must be at least 2, got ", options.context_size));
  }
  data::PackingOptions packing;
  packing.context_size = options.context_size;
  std::vector<std::vector<int32_t>> train = data::PackDocuments(packing, train_docs);
  std::vector<std::vector<int32_t>> held = data::PackDocuments(packing, held_docs);
  if (train.empty() || held.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the dataset ", options.dataset_path, " is too small: ", train_docs.size(),
        " training and ", held_docs.size(), " held-out documents pack into ", train.size(), " and ",
        held.size(), " contexts of ", options.context_size,
        " tokens; each part needs at least one (use more data or a smaller context size)"));
  }
  TrainingCorpus corpus;
  corpus.options_ = options;
  corpus.train_ = ToTensor(train, options.context_size);
  corpus.held_out_ = ToTensor(held, options.context_size);
  corpus.documents_ = static_cast<int64_t>(train_docs.size() + held_docs.size());
  corpus.held_out_documents_ = static_cast<int64_t>(held_docs.size());
  corpus.train_unigram_entropy_ = UnigramEntropy(corpus.train_, options.vocab_size);
  corpus.held_out_unigram_entropy_ = UnigramEntropy(corpus.held_out_, options.vocab_size);
  corpus.fingerprint_ = Fnv1a(corpus.held_out_, Fnv1a(corpus.train_, 14695981039346656037ULL));
  return corpus;
}

at::Tensor TrainingCorpus::Contexts(int64_t first, int64_t count, uint64_t seed) const {
  const int64_t n = train_.size(0);
  std::vector<int64_t> rows;
  rows.reserve(count);
  for (int64_t i = first; i < first + count; ++i) {
    const int64_t epoch = i / n;
    if (epoch != permutation_epoch_ || seed != permutation_seed_) {
      permutation_.resize(n);
      for (int64_t j = 0; j < n; ++j) permutation_[j] = j;
      std::mt19937_64 engine(seed + static_cast<uint64_t>(epoch));
      for (int64_t j = n - 1; j > 0; --j) {
        std::swap(permutation_[j], permutation_[UniformBelow(engine, j + 1)]);
      }
      permutation_epoch_ = epoch;
      permutation_seed_ = seed;
    }
    rows.push_back(permutation_[i % n]);
  }
  return train_.index_select(0, at::tensor(rows, at::kLong));
}

}  // namespace sae::model
