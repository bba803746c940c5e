#include "core/data/dataset.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/data/jsonl_fields.h"
#include "core/data/mapped_file.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::data {
namespace {

namespace fs = std::filesystem;

// The files a dataset path names, sorted, and the folder their names are taken relative to.
struct FileList {
  std::vector<std::string> paths;
  std::string root;
};

bool IsGlob(const std::string& path) { return path.find_first_of("*?[") != std::string::npos; }

absl::Status MissingPath(const std::string& path) {
  std::string message = absl::StrCat("dataset_path ", path, " does not exist");
  // The seed's default dataset_path is a Hugging Face Hub name such as NeelNanda/c4-10k.
  if (!path.empty() && path[0] != '/' && path[0] != '.' &&
      std::count(path.begin(), path.end(), '/') == 1) {
    absl::StrAppend(&message,
                    "; Hugging Face Hub datasets cannot be downloaded here: give a local text, "
                    "JSONL, .bin or .npy file, a folder of them, or a glob");
  }
  return absl::NotFoundError(message);
}

absl::StatusOr<FileList> ListFiles(const std::string& path) {
  FileList list;
  if (IsGlob(path)) {
    glob_t matches;
    int result = ::glob(path.c_str(), GLOB_ERR, nullptr, &matches);
    if (result == GLOB_NOMATCH) {
      ::globfree(&matches);
      return absl::NotFoundError(absl::StrCat("dataset_path ", path, " matches no files"));
    }
    if (result != 0) {
      ::globfree(&matches);
      return absl::InternalError(absl::StrCat("cannot expand the glob ", path));
    }
    for (size_t i = 0; i < matches.gl_pathc; ++i) list.paths.push_back(matches.gl_pathv[i]);
    ::globfree(&matches);
    size_t wildcard = path.find_first_of("*?[");
    size_t slash = path.rfind('/', wildcard);
    list.root = slash == std::string::npos ? "" : path.substr(0, slash);
    for (const std::string& match : list.paths) {
      struct stat st;
      if (::stat(match.c_str(), &st) != 0) return ErrnoStatus("cannot stat", match, errno);
      if (S_ISDIR(st.st_mode)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dataset_path ", path, " matches the folder ", match,
            "; a glob must match files (name the folder itself to read all its files)"));
      }
    }
  } else {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return MissingPath(path);
      return ErrnoStatus("cannot stat dataset_path", path, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      list.root = path;
      std::error_code error;
      fs::recursive_directory_iterator it(path, error), end;
      for (; !error && it != end; it.increment(error)) {
        std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory(error)) it.disable_recursion_pending();
          error.clear();
          continue;
        }
        struct stat entry;
        std::string entry_path = it->path().string();
        if (::stat(entry_path.c_str(), &entry) != 0) {
          return ErrnoStatus("cannot stat", entry_path, errno);
        }
        if (S_ISREG(entry.st_mode)) list.paths.push_back(entry_path);
      }
      if (error) {
        return absl::InternalError(
            absl::StrCat("cannot list the folder ", path, ": ", error.message()));
      }
      if (list.paths.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("dataset_path ", path, " is a folder holding no files"));
      }
    } else {
      list.paths.push_back(path);
      list.root = fs::path(path).parent_path().string();
    }
  }
  std::sort(list.paths.begin(), list.paths.end());
  return list;
}

enum class FileKind { kText, kJsonl, kBin, kNpy };

FileKind KindOfPath(const std::string& path) {
  std::string extension = absl::AsciiStrToLower(fs::path(path).extension().string());
  if (extension == ".jsonl" || extension == ".json" || extension == ".ndjson") {
    return FileKind::kJsonl;
  }
  if (extension == ".bin") return FileKind::kBin;
  if (extension == ".npy") return FileKind::kNpy;
  return FileKind::kText;
}

const char* KindName(FileKind kind) {
  switch (kind) {
    case FileKind::kText:
      return "a text file";
    case FileKind::kJsonl:
      return "a JSONL file";
    case FileKind::kBin:
    case FileKind::kNpy:
      return "a token file";
  }
  return "";
}

// Size in bytes of a readable regular file; the errors name it.
absl::StatusOr<uint64_t> ReadableFileSize(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path, errno);
  struct stat st;
  int result = ::fstat(fd, &st);
  int error_number = errno;
  ::close(fd);
  if (result != 0) return ErrnoStatus("cannot stat", path, error_number);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  return static_cast<uint64_t>(st.st_size);
}

absl::Status ValidateOptions(const DatasetOptions& options) {
  if (options.dataset_path.empty()) {
    return absl::InvalidArgumentError("dataset_path is empty; name a file, a folder or a glob");
  }
  if (options.context_size < 1 || (options.prepend_bos && options.context_size < 2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("context_size is ", options.context_size, "; it must be at least ",
                     options.prepend_bos ? "2 with prepend_bos (one BOS and one token)" : "1"));
  }
  if (!(options.held_out_fraction >= 0 && options.held_out_fraction <= 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "held_out_fraction is ", options.held_out_fraction, "; it must be in [0, 0.5]"));
  }
  if (options.vocab_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size is ", options.vocab_size, "; it must be positive"));
  }
  if (options.bos_token_id < 0 || options.bos_token_id >= options.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("bos_token_id ", options.bos_token_id,
                                                   " lies outside the vocabulary of ",
                                                   options.vocab_size));
  }
  if (options.text_document_separator.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError("text_document_separator must be a single line");
  }
  return absl::OkStatus();
}

// Whether a JSONL dataset holds tokens, from its first non-blank line; checked against the
// option when it is set.
absl::StatusOr<bool> DetectJsonlTokenized(const std::vector<DatasetFile>& files,
                                          const std::optional<bool>& given,
                                          const std::string& dataset_path) {
  for (const DatasetFile& file : files) {
    SAE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(file.path));
    std::string_view bytes = mapped->bytes();
    size_t line_begin = 0;
    size_t line_number = 1;
    while (line_begin < bytes.size()) {
      size_t line_end = bytes.find('\n', line_begin);
      if (line_end == std::string_view::npos) line_end = bytes.size();
      std::string_view line = bytes.substr(line_begin, line_end - line_begin);
      if (!IsBlankLine(line)) {
        SAE_ASSIGN_OR_RETURN(JsonlFields fields, InspectJsonlLine(line, file.path, line_number));
        std::string where = absl::StrCat(file.path, ":", line_number);
        if (given.has_value()) {
          if (*given && !fields.has_tokens) {
            return absl::InvalidArgumentError(absl::StrCat(
                "is_dataset_tokenized is true but ", where,
                " has no \"tokens\" or \"input_ids\" field",
                fields.has_text ? " (it holds \"text\": set is_dataset_tokenized: false)" : ""));
          }
          if (!*given && !fields.has_text) {
            return absl::InvalidArgumentError(absl::StrCat(
                "is_dataset_tokenized is false but ", where, " has no \"text\" field",
                fields.has_tokens ? " (it holds token ids: set is_dataset_tokenized: true)" : ""));
          }
          return *given;
        }
        if (fields.has_tokens) return true;
        if (fields.has_text) return false;
        return absl::InvalidArgumentError(
            absl::StrCat(where,
                         ": the JSON object has none of the fields \"text\", \"tokens\", "
                         "\"input_ids\""));
      }
      line_begin = line_end + 1;
      ++line_number;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("dataset ", dataset_path, " holds no documents: every JSONL line is blank"));
}

uint64_t Fnv1a(uint64_t hash, std::string_view bytes) {
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Dataset>> Dataset::Open(
    const DatasetOptions& options, const tokenizer::Gpt2Tokenizer* tokenizer) {
  SAE_RETURN_IF_ERROR(ValidateOptions(options));
  SAE_ASSIGN_OR_RETURN(FileList list, ListFiles(options.dataset_path));

  std::shared_ptr<Dataset> dataset(new Dataset());
  dataset->options_ = options;
  dataset->tokenizer_ = tokenizer;

  FileKind kind = KindOfPath(list.paths.front());
  bool is_token_file = kind == FileKind::kBin || kind == FileKind::kNpy;
  for (const std::string& path : list.paths) {
    FileKind this_kind = KindOfPath(path);
    bool this_is_token_file = this_kind == FileKind::kBin || this_kind == FileKind::kNpy;
    if (this_kind != kind && !(is_token_file && this_is_token_file)) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", options.dataset_path, " mixes formats: ", list.paths.front(),
                       " is ", KindName(kind), " but ", path, " is ", KindName(this_kind),
                       "; use a glob that matches one format"));
    }
    DatasetFile file;
    file.path = path;
    SAE_ASSIGN_OR_RETURN(uint64_t bytes, ReadableFileSize(path));
    file.units = bytes;
    if (this_is_token_file) {
      SAE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
      if (this_kind == FileKind::kBin) {
        SAE_ASSIGN_OR_RETURN(file.layout, ParseBinLayout(path, mapped->bytes()));
      } else {
        SAE_ASSIGN_OR_RETURN(file.layout, ParseNpyLayout(path, mapped->bytes()));
      }
      file.units = file.layout.row_length > 0 ? file.layout.count / file.layout.row_length
                                              : file.layout.count;
    }
    dataset->files_.push_back(std::move(file));
  }

  for (const DatasetFile& file : dataset->files_) {
    dataset->file_begins_.push_back(dataset->total_units_);
    dataset->total_units_ += file.units;
  }
  if (dataset->total_units_ == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset ", options.dataset_path, " is empty: ",
                     dataset->files_.size() == 1
                         ? dataset->files_[0].path + " holds no data"
                         : absl::StrCat("its ", dataset->files_.size(), " files hold no data")));
  }

  // fraction x 2^64 is exact (a power-of-two scaling) and at most 2^63, so it fits.
  dataset->held_out_threshold_ = static_cast<uint64_t>(std::ldexp(options.held_out_fraction, 64));

  const std::optional<bool>& given = options.is_dataset_tokenized;
  switch (kind) {
    case FileKind::kText:
      dataset->format_ = DatasetFormat::kText;
      if (given.value_or(false)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "is_dataset_tokenized is true but ", list.paths.front(),
            " is a text file; set is_dataset_tokenized: false, or give a .bin, .npy or JSONL "
            "file of token ids"));
      }
      dataset->is_tokenized_ = false;
      break;
    case FileKind::kJsonl: {
      dataset->format_ = DatasetFormat::kJsonl;
      SAE_ASSIGN_OR_RETURN(dataset->is_tokenized_,
                           DetectJsonlTokenized(dataset->files_, given, options.dataset_path));
      dataset->rows_are_contexts_ = dataset->is_tokenized_;
      break;
    }
    case FileKind::kBin:
    case FileKind::kNpy: {
      dataset->format_ = DatasetFormat::kTokenFile;
      if (given.has_value() && !*given) {
        return absl::InvalidArgumentError(absl::StrCat(
            "is_dataset_tokenized is false but ", list.paths.front(), " holds token ids (",
            dataset->files_.front().layout.description, "); set is_dataset_tokenized: true"));
      }
      dataset->is_tokenized_ = true;
      const DatasetFile& first = dataset->files_.front();
      dataset->rows_are_contexts_ = first.layout.row_length > 0;
      for (const DatasetFile& file : dataset->files_) {
        if ((file.layout.row_length > 0) != dataset->rows_are_contexts_) {
          return absl::InvalidArgumentError(absl::StrCat(
              "dataset ", options.dataset_path, " mixes token streams and rows: ", first.path,
              " is ", first.layout.description, " but ", file.path, " is ",
              file.layout.description));
        }
      }
      break;
    }
  }

  if (!dataset->is_tokenized_) {
    if (tokenizer == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset ", options.dataset_path,
                       " holds text, which needs a tokenizer; none was given"));
    }
    if (tokenizer->vocab_size() > options.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("the tokenizer has ", tokenizer->vocab_size(),
                                                     " ids but vocab_size is ",
                                                     options.vocab_size));
    }
  }

  uint64_t hash = 0xcbf29ce484222325ULL;
  hash = Fnv1a(hash, absl::StrCat(static_cast<int>(dataset->format_), "/", dataset->is_tokenized_,
                                  "/", dataset->rows_are_contexts_, "/"));
  if (dataset->format_ == DatasetFormat::kText) {
    hash = Fnv1a(hash, options.text_document_separator);
  }
  if (dataset->format_ == DatasetFormat::kTokenFile) {
    hash = Fnv1a(hash, absl::StrCat(options.bos_token_id));
  }
  for (const DatasetFile& file : dataset->files_) {
    std::string name =
        list.root.empty() ? file.path : fs::path(file.path).lexically_relative(list.root).string();
    hash = Fnv1a(hash, absl::StrCat("\n", name, "\t", file.units));
  }
  // Which documents a shard reads depends on the held-out split too (and on its rule: cursors
  // of the former held-out tail do not apply).
  if (options.held_out_fraction > 0) {
    hash = Fnv1a(hash, absl::StrCat("\nheld_out splitmix64 ", options.held_out_fraction));
  }
  dataset->fingerprint_ = hash;
  return std::shared_ptr<const Dataset>(std::move(dataset));
}

uint64_t Dataset::HeldOutDraw(uint64_t unit) {
  uint64_t z = (unit + 1) * 0x9e3779b97f4a7c15ULL;  // modulo 2^64
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

ShardRange Dataset::RangeOfShard(uint32_t shard_index, uint32_t shard_count) const {
  if (shard_index == kHeldOutShard) return ShardRange{0, total_units_};
  auto boundary = [this, shard_count](uint64_t i) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(total_units_) * i / shard_count);
  };
  return ShardRange{boundary(shard_index), boundary(shard_index + 1ULL)};
}

size_t Dataset::FileAt(uint64_t unit, uint64_t* file_begin) const {
  // The last file whose begin is <= unit; empty files share their begin with the next file.
  auto it = std::upper_bound(file_begins_.begin(), file_begins_.end(), unit);
  size_t index = static_cast<size_t>(it - file_begins_.begin()) - 1;
  *file_begin = file_begins_[index];
  return index;
}

std::string Dataset::Describe() const {
  const char* what = "";
  switch (format_) {
    case DatasetFormat::kText:
      what = "text";
      break;
    case DatasetFormat::kJsonl:
      what = is_tokenized_ ? "JSONL (token rows)" : "JSONL (text)";
      break;
    case DatasetFormat::kTokenFile:
      what = rows_are_contexts_ ? "token file (rows)" : "token file (stream)";
      break;
  }
  const char* unit =
      format_ == DatasetFormat::kTokenFile ? (rows_are_contexts_ ? "rows" : "tokens") : "bytes";
  return absl::StrFormat("%s: %d %s file%s, %d %s", options_.dataset_path, files_.size(), what,
                         files_.size() == 1 ? "" : "s", total_units_, unit);
}

}  // namespace sae::data
