// A dataset on local disk: its files, their format, and how they split into shards.
#ifndef SAE_CORE_DATA_DATASET_H_
#define SAE_CORE_DATA_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/data/dataset_options.h"
#include "core/data/token_file_format.h"
#include "core/tokenizer/gpt2_tokenizer.h"

namespace sae::data {

enum class DatasetFormat {
  kText,       // text files; tokenised
  kJsonl,      // JSON lines with `text` (tokenised) or `tokens` / `input_ids` (rows)
  kTokenFile,  // .bin and .npy token files
};

// One file of a dataset. Offsets into a file are counted in units: bytes for text and JSONL,
// ids for a token stream, rows for a 2-D .npy.
struct DatasetFile {
  std::string path;
  uint64_t units = 0;
  TokenFileLayout layout;  // token files only
};

// The half-open range [begin, end) of a shard in the dataset's units, the files laid end to end.
// A shard owns the documents whose first unit lies in its range.
struct ShardRange {
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Immutable after Open and thread-safe: shards on many threads may share one Dataset.
class Dataset {
 public:
  // Finds the files of `options.dataset_path`, reads the headers of token files, detects whether
  // the data is tokenised and checks it against `options.is_dataset_tokenized`. `tokenizer` is
  // needed for text (a text file or JSONL `text`) and may be null otherwise; it must outlive the
  // Dataset and its shards.
  //
  // Errors name the path: NotFound (no such path, a glob matching nothing), PermissionDenied
  // (an unreadable file), InvalidArgument (no files, every file empty, mixed formats, a bad
  // header, a first JSON line with neither `text` nor `tokens`/`input_ids`, a tokenisation
  // mismatch, bad options, text without a tokenizer).
  static absl::StatusOr<std::shared_ptr<const Dataset>> Open(
      const DatasetOptions& options, const tokenizer::Gpt2Tokenizer* tokenizer);

  const DatasetOptions& options() const { return options_; }
  DatasetFormat format() const { return format_; }

  // Whether the files hold token ids (detected, and equal to options().is_dataset_tokenized
  // when that is set).
  bool is_tokenized() const { return is_tokenized_; }

  // Whether each document is already a context (JSONL `tokens`, 2-D .npy): used as it is,
  // truncated to context_size; shorter rows are errors. Otherwise documents are packed.
  bool rows_are_contexts() const { return rows_are_contexts_; }

  // Files in the order their documents are read (sorted by path).
  const std::vector<DatasetFile>& files() const { return files_; }
  uint64_t total_units() const { return total_units_; }

  // The global unit where file `file_index` starts (the sum of the units of the files before).
  uint64_t file_begin(size_t file_index) const { return file_begins_[file_index]; }

  // The shard index of the held-out documents (DatasetOptions::held_out_fraction), whatever
  // the shard count. Its range is the whole dataset; it reads only the held-out documents.
  static constexpr uint32_t kHeldOutShard = 0xffffffffu;

  // Whether the document that starts at global unit `unit` (file_begin of its file plus its
  // start in the file) is held out: HeldOutDraw(unit) < held_out_fraction x 2^64. Never when
  // held_out_fraction is 0. A function of the unit and the fraction alone, so every shard, every
  // process and every run agree (docs/data.md, "Held-out documents").
  bool IsHeldOut(uint64_t unit) const { return HeldOutDraw(unit) < held_out_threshold_; }

  // The document's draw, uniform over 64 bits: the (unit + 1)-th output of splitmix64 seeded
  // with 0 (Steele, Lea and Flood 2014; Vigna's splitmix64.c). Integer arithmetic only, the
  // same on every platform. The draw of unit 0 is 0xe220a8397b1dcdaf (0.88 x 2^64), so the
  // first document of a dataset is never held out: a one-document dataset keeps it for training.
  static uint64_t HeldOutDraw(uint64_t unit);

  // The units shard `shard_index` of `shard_count` owns. Requires shard_index < shard_count, or
  // kHeldOutShard. The ranges of the shards are disjoint and cover [0, total_units()); a shard
  // reads the documents that start in its range and are not held out (IsHeldOut). The range of
  // kHeldOutShard is [0, total_units()) and it reads the held-out documents.
  ShardRange RangeOfShard(uint32_t shard_index, uint32_t shard_count) const;

  // The index of the file holding global unit `unit` and the unit where that file starts.
  // Requires unit < total_units().
  size_t FileAt(uint64_t unit, uint64_t* file_begin) const;

  // A stable 64-bit hash of the format, the file names and sizes, and the options that decide
  // where documents begin. Cursors carry it so that a cursor is not applied to other data.
  uint64_t fingerprint() const { return fingerprint_; }

  // Null for token data opened without a tokenizer.
  const tokenizer::Gpt2Tokenizer* tokenizer() const { return tokenizer_; }

  // "12 JSONL files (text), 3.1 MB" and the like, for logs.
  std::string Describe() const;

 private:
  Dataset() = default;

  DatasetOptions options_;
  const tokenizer::Gpt2Tokenizer* tokenizer_ = nullptr;
  DatasetFormat format_ = DatasetFormat::kText;
  bool is_tokenized_ = false;
  bool rows_are_contexts_ = false;
  std::vector<DatasetFile> files_;
  std::vector<uint64_t> file_begins_;  // global unit where each file starts
  uint64_t total_units_ = 0;
  uint64_t held_out_threshold_ = 0;  // held_out_fraction x 2^64
  uint64_t fingerprint_ = 0;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_DATASET_H_
