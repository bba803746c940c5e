// A dataset file of arbitrary bytes, read as the trainers read it. Built once per format, the
// file's extension being SAE_FUZZ_DATASET_EXTENSION (".jsonl", ".bin", ".npy", ".txt").
// Properties: Dataset::Open and reading never crash; when every read succeeds, the documents of
// shards 0 and 1 of 2, in that order, are those of the single shard (shards are disjoint and
// cover the data); packed contexts hold context_size ids inside the vocabulary; and a
// ContextShard resumed from a cursor serves the contexts the original served next.
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/data/context_shard.h"
#include "core/data/dataset.h"
#include "core/data/document_stream.h"
#include "fuzz/fuzz_tokenizer.h"
#include "fuzz/scratch_dir.h"
#include "spdlog/spdlog.h"

#ifndef SAE_FUZZ_DATASET_EXTENSION
#error "define SAE_FUZZ_DATASET_EXTENSION"
#endif

namespace {

using sae::data::Dataset;
using sae::fuzz::PropertyFailed;
using Documents = std::vector<std::vector<int32_t>>;

constexpr int kMaxDocuments = 100000;
constexpr int64_t kContextSize = 8;

// The documents of one epoch of shard `index` of `count`, or false when reading fails.
bool ReadEpoch(const std::shared_ptr<const Dataset>& dataset, uint32_t index, uint32_t count,
               Documents* documents) {
  auto stream = sae::data::DocumentStream::Open(dataset, index, count);
  if (!stream.ok()) return false;
  for (int i = 0; i < kMaxDocuments; ++i) {
    sae::data::Document document;
    if (!(*stream)->Next(&document).ok()) return false;
    if (document.position.epoch > 0) return true;
    documents->push_back(document.tokens.ToVector());
  }
  PropertyFailed("an epoch of more documents than the input has bytes");
}

void CheckContexts(const std::shared_ptr<const Dataset>& dataset) {
  auto shard = sae::data::ContextShard::Open(dataset, 0, 1);
  if (!shard.ok()) return;
  std::vector<int32_t> first, second, third;
  if (!(*shard)->Next(&first).ok()) return;
  const sae::data::ShardCursor cursor = (*shard)->cursor();
  if (!(*shard)->Next(&second).ok() || !(*shard)->Next(&third).ok()) return;
  for (const auto* context : {&first, &second, &third}) {
    if (static_cast<int64_t>(context->size()) != kContextSize) PropertyFailed("a short context");
    for (int32_t id : *context) {
      if (id < 0 || id >= dataset->options().vocab_size) PropertyFailed(absl::StrCat("id ", id));
    }
  }
  auto resumed = sae::data::ContextShard::Resume(dataset, cursor);
  if (!resumed.ok()) PropertyFailed("Resume refuses a cursor: " + resumed.status().ToString());
  std::vector<int32_t> second_again, third_again;
  if (!(*resumed)->Next(&second_again).ok() || !(*resumed)->Next(&third_again).ok() ||
      second_again != second || third_again != third) {
    PropertyFailed("a resumed shard serves other contexts");
  }
}

}  // namespace

// The readers warn at every epoch boundary; millions of runs need no such lines.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (std::getenv("SAE_FUZZ_VERBOSE") == nullptr) spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = sae::fuzz::WriteScratchFile(
      std::string("data") + SAE_FUZZ_DATASET_EXTENSION, sae::fuzz::AsBytes(data, size));
  sae::data::DatasetOptions options;
  options.dataset_path = path;
  options.context_size = kContextSize;
  auto dataset = Dataset::Open(options, &sae::fuzz::FuzzTokenizer());
  if (!dataset.ok()) return 0;

  Documents whole, halves;
  if (ReadEpoch(*dataset, 0, 1, &whole) && ReadEpoch(*dataset, 0, 2, &halves) &&
      ReadEpoch(*dataset, 1, 2, &halves) && whole != halves) {
    PropertyFailed(
        absl::StrCat("two shards read ", halves.size(), " documents, one shard ", whole.size()));
  }
  CheckContexts(*dataset);
  return 0;
}
