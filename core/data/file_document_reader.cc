#include "core/data/file_document_reader.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/data/jsonl_fields.h"
#include "core/data/mapped_file.h"
#include "core/util/status.h"

namespace sae::data {
namespace {

constexpr size_t kNone = std::string_view::npos;

// The position after the line break that ends the line holding `at`, or `bytes.size()`.
size_t AfterLineBreak(std::string_view bytes, size_t at) {
  if (at >= bytes.size()) return bytes.size();
  const void* line_break = std::memchr(bytes.data() + at, '\n', bytes.size() - at);
  if (line_break == nullptr) return bytes.size();
  return static_cast<size_t>(static_cast<const char*>(line_break) - bytes.data()) + 1;
}

// The first line start at or after `at`.
size_t LineStartAtOrAfter(std::string_view bytes, size_t at) {
  if (at == 0) return 0;
  if (at >= bytes.size()) return bytes.size();
  if (bytes[at - 1] == '\n') return at;
  return AfterLineBreak(bytes, at);
}

// Text files: documents are separated by lines equal to the separator (a trailing '\r'
// allowed). A document starts at byte 0 or right after a separator line; its bytes run to the
// line break in front of the next separator line (that break, and a '\r' before it, excluded).
class TextReader : public FileDocumentReader {
 public:
  TextReader(const Dataset& dataset, size_t file_index, bool held_out,
             std::unique_ptr<MappedFile> file)
      : FileDocumentReader(dataset, file_index, held_out),
        tokenizer_(*dataset.tokenizer()),
        separator_(dataset.options().text_document_separator),
        file_(std::move(file)),
        bytes_(file_->bytes()) {}

  void Seek(uint64_t offset) override {
    if (offset == 0) {
      position_ = 0;
      return;
    }
    if (separator_.empty() || offset >= bytes_.size()) {
      position_ = bytes_.size();
      return;
    }
    // A start p > 0 follows a separator line, which begins no earlier than
    // p - separator - "\r\n": scanning lines from there finds it.
    size_t reach = separator_.size() + 2;
    size_t line = LineStartAtOrAfter(bytes_, offset > reach ? offset - reach : 0);
    while (true) {
      size_t separator_line = FindSeparatorLine(line);
      if (separator_line == kNone) {
        position_ = bytes_.size();
        return;
      }
      line = AfterLineBreak(bytes_, separator_line);
      if (line >= offset) {
        position_ = line;
        return;
      }
    }
  }

  uint64_t position() const override { return position_; }

  absl::StatusOr<bool> Next(uint64_t end, FileDocument* document) override {
    while (true) {
      size_t begin = position_;
      if (begin >= end || begin >= bytes_.size()) return false;
      size_t separator_line = separator_.empty() ? kNone : FindSeparatorLine(begin);
      size_t document_end = bytes_.size();
      if (separator_line == kNone) {
        position_ = bytes_.size();
      } else {
        position_ = AfterLineBreak(bytes_, separator_line);
        document_end = separator_line == begin ? begin : separator_line - 1;
        if (document_end > begin && bytes_[document_end - 1] == '\r') --document_end;
      }
      if (document_end == begin || !Wanted(begin)) continue;
      std::vector<int32_t> tokens = tokenizer_.Encode(bytes_.substr(begin, document_end - begin));
      if (tokens.empty()) continue;
      document->start = begin;
      document->tokens = TokenSequence::Owned(std::move(tokens));
      return true;
    }
  }

 private:
  // The start of the first separator line at or after `line` (a line start), or kNone.
  size_t FindSeparatorLine(size_t line) const {
    size_t at = line;
    while (at < bytes_.size()) {
      const void* hit =
          ::memmem(bytes_.data() + at, bytes_.size() - at, separator_.data(), separator_.size());
      if (hit == nullptr) return kNone;
      size_t found = static_cast<size_t>(static_cast<const char*>(hit) - bytes_.data());
      size_t after = found + separator_.size();
      bool starts_line = found == 0 || bytes_[found - 1] == '\n';
      bool ends_line =
          after == bytes_.size() || bytes_[after] == '\n' ||
          (bytes_[after] == '\r' && (after + 1 == bytes_.size() || bytes_[after + 1] == '\n'));
      if (starts_line && ends_line) return found;
      at = found + 1;
    }
    return kNone;
  }

  const tokenizer::Gpt2Tokenizer& tokenizer_;
  const std::string separator_;
  std::unique_ptr<MappedFile> file_;
  std::string_view bytes_;
  size_t position_ = 0;
};

// JSONL: every non-blank line is a document and starts at its first byte.
class JsonlReader : public FileDocumentReader {
 public:
  JsonlReader(const Dataset& dataset, size_t file_index, bool held_out,
              std::unique_ptr<MappedFile> file)
      : FileDocumentReader(dataset, file_index, held_out),
        file_(std::move(file)),
        bytes_(file_->bytes()) {}

  void Seek(uint64_t offset) override {
    position_ = LineStartAtOrAfter(bytes_, std::min<uint64_t>(offset, bytes_.size()));
  }

  uint64_t position() const override { return position_; }

  absl::StatusOr<bool> Next(uint64_t end, FileDocument* document) override {
    while (true) {
      size_t begin = position_;
      if (begin >= end || begin >= bytes_.size()) return false;
      position_ = AfterLineBreak(bytes_, begin);
      std::string_view line = bytes_.substr(begin, position_ - begin);
      if (IsBlankLine(line) || !Wanted(begin)) continue;
      size_t line_number = LineNumberAt(begin);
      std::vector<int32_t> tokens;
      if (dataset_.is_tokenized()) {
        SAE_ASSIGN_OR_RETURN(tokens, ParseJsonlTokens(line, file_->path(), line_number,
                                                      dataset_.options().vocab_size));
        if (static_cast<int64_t>(tokens.size()) < dataset_.options().context_size) {
          return absl::InvalidArgumentError(absl::StrCat(
              file_->path(), ":", line_number, ": the pre-tokenised row holds ", tokens.size(),
              " ids, fewer than context_size ", dataset_.options().context_size,
              "; rows are used as they are, so each must fill a context"));
        }
      } else {
        SAE_ASSIGN_OR_RETURN(std::string text, ParseJsonlText(line, file_->path(), line_number));
        tokens = dataset_.tokenizer()->Encode(text);
      }
      if (tokens.empty()) continue;
      document->start = begin;
      document->tokens = TokenSequence::Owned(std::move(tokens));
      return true;
    }
  }

 private:
  // 1-based line number of the line starting at `offset`. Reading moves forward, so the count
  // continues from the previous call.
  size_t LineNumberAt(size_t offset) {
    if (offset < counted_to_) {
      counted_to_ = 0;
      line_number_ = 1;
    }
    line_number_ += static_cast<size_t>(
        std::count(bytes_.begin() + counted_to_, bytes_.begin() + offset, '\n'));
    counted_to_ = offset;
    return line_number_;
  }

  std::unique_ptr<MappedFile> file_;
  std::string_view bytes_;
  size_t position_ = 0;
  size_t counted_to_ = 0;
  size_t line_number_ = 1;
};

// The ids of a token file, read in place.
class TokenArray {
 public:
  TokenArray(const MappedFile& file, const TokenFileLayout& layout)
      : data_(file.bytes().data() + layout.data_offset),
        count_(layout.count),
        width_(layout.width),
        is_signed_(layout.is_signed) {}

  uint64_t size() const { return count_; }
  int width() const { return width_; }
  const char* data() const { return data_; }

  int64_t operator[](uint64_t i) const {
    if (width_ == 2) {
      uint16_t value;
      std::memcpy(&value, data_ + 2 * i, 2);
      return value;
    }
    if (is_signed_) {
      int32_t value;
      std::memcpy(&value, data_ + 4 * i, 4);
      return value;
    }
    uint32_t value;
    std::memcpy(&value, data_ + 4 * i, 4);
    return value;
  }

  // The first index in [begin, count) whose id is `delimiter` or outside [0, vocab_size), or
  // count. Requires delimiter < vocab_size.
  uint64_t FindDelimiterOrInvalid(uint64_t begin, int32_t delimiter) const {
    if (width_ == 2) {
      // Ids at or above the delimiter are either the delimiter or checked by the caller.
      const char* bytes = data_;
      for (uint64_t i = begin; i < count_; ++i) {
        uint16_t value;
        std::memcpy(&value, bytes + 2 * i, 2);
        if (value >= delimiter) return i;
      }
      return count_;
    }
    for (uint64_t i = begin; i < count_; ++i) {
      int64_t value = (*this)[i];
      if (value >= delimiter || value < 0) return i;
    }
    return count_;
  }

 private:
  const char* data_;
  uint64_t count_;
  int width_;
  bool is_signed_;
};

absl::Status TokenOutsideVocabulary(const DatasetFile& file, uint64_t index, int64_t id,
                                    int32_t vocab_size) {
  return absl::InvalidArgumentError(
      absl::StrCat(file.path, ": token id ", id, " at token index ", index, " (byte offset ",
                   file.layout.data_offset + index * file.layout.width,
                   ") lies outside the vocabulary [0, ", vocab_size, ")"));
}

// A token stream (.bin, 1-D .npy): documents are delimited by the BOS/EOT id. A document
// starts at id 0 or right after a delimiter; runs of delimiters make no empty documents.
class TokenStreamReader : public FileDocumentReader {
 public:
  TokenStreamReader(const Dataset& dataset, size_t file_index, bool held_out,
                    std::unique_ptr<MappedFile> mapped)
      : FileDocumentReader(dataset, file_index, held_out),
        file_(dataset.files()[file_index]),
        mapped_(std::move(mapped)),
        tokens_(*mapped_, file_.layout),
        delimiter_(dataset.options().bos_token_id),
        vocab_size_(dataset.options().vocab_size) {}

  void Seek(uint64_t offset) override {
    if (offset == 0 || offset >= tokens_.size()) {
      position_ = std::min(offset, tokens_.size());
      return;
    }
    if (tokens_[offset - 1] == delimiter_) {
      position_ = offset;
      return;
    }
    uint64_t at = offset;
    while (at < tokens_.size() && tokens_[at] != delimiter_) ++at;
    position_ = at < tokens_.size() ? at + 1 : tokens_.size();
  }

  uint64_t position() const override { return position_; }

  absl::StatusOr<bool> Next(uint64_t end, FileDocument* document) override {
    while (true) {
      uint64_t begin = position_;
      if (begin >= end || begin >= tokens_.size()) return false;
      uint64_t at = begin;
      while (true) {
        at = tokens_.FindDelimiterOrInvalid(at, delimiter_);
        if (at == tokens_.size() || tokens_[at] == delimiter_) break;
        if (tokens_[at] < 0 || tokens_[at] >= vocab_size_) {
          return TokenOutsideVocabulary(file_, at, tokens_[at], vocab_size_);
        }
        ++at;  // a valid id above the delimiter
      }
      position_ = at < tokens_.size() ? at + 1 : tokens_.size();
      if (at == begin || !Wanted(begin)) continue;
      document->start = begin;
      document->tokens = TokenSequence::View(tokens_.data() + begin * tokens_.width(), at - begin,
                                             tokens_.width());
      return true;
    }
  }

 private:
  const DatasetFile& file_;
  std::unique_ptr<MappedFile> mapped_;
  TokenArray tokens_;
  int32_t delimiter_;
  int32_t vocab_size_;
  uint64_t position_ = 0;
};

// Rows of a 2-D .npy: each row is a document and a context.
class TokenRowReader : public FileDocumentReader {
 public:
  TokenRowReader(const Dataset& dataset, size_t file_index, bool held_out,
                 std::unique_ptr<MappedFile> mapped)
      : FileDocumentReader(dataset, file_index, held_out),
        file_(dataset.files()[file_index]),
        mapped_(std::move(mapped)),
        tokens_(*mapped_, file_.layout),
        row_length_(file_.layout.row_length),
        vocab_size_(dataset.options().vocab_size) {}

  void Seek(uint64_t offset) override { position_ = std::min(offset, file_.units); }

  uint64_t position() const override { return position_; }

  absl::StatusOr<bool> Next(uint64_t end, FileDocument* document) override {
    uint64_t row = position_;
    while (row < end && row < file_.units && !Wanted(row)) ++row;
    position_ = row;
    if (row >= end || row >= file_.units) return false;
    uint64_t first = row * row_length_;
    for (uint64_t i = first; i < first + row_length_; ++i) {
      if (tokens_[i] < 0 || tokens_[i] >= vocab_size_) {
        return TokenOutsideVocabulary(file_, i, tokens_[i], vocab_size_);
      }
    }
    position_ = row + 1;
    document->start = row;
    document->tokens =
        TokenSequence::View(tokens_.data() + first * tokens_.width(), row_length_, tokens_.width());
    return true;
  }

 private:
  const DatasetFile& file_;
  std::unique_ptr<MappedFile> mapped_;
  TokenArray tokens_;
  uint64_t row_length_;
  int32_t vocab_size_;
  uint64_t position_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileDocumentReader>> FileDocumentReader::Open(const Dataset& dataset,
                                                                             size_t file_index,
                                                                             bool held_out) {
  const DatasetFile& file = dataset.files()[file_index];
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(file.path));
  uint64_t size = mapped->bytes().size();
  uint64_t expected_size = dataset.format() == DatasetFormat::kTokenFile
                               ? file.layout.data_offset + file.layout.count * file.layout.width
                               : file.units;
  if (size != expected_size) {
    return absl::FailedPreconditionError(
        absl::StrCat(file.path, " changed since the dataset was opened (", expected_size,
                     " bytes then, ", size, " now)"));
  }
  switch (dataset.format()) {
    case DatasetFormat::kText:
      return std::unique_ptr<FileDocumentReader>(
          new TextReader(dataset, file_index, held_out, std::move(mapped)));
    case DatasetFormat::kJsonl:
      return std::unique_ptr<FileDocumentReader>(
          new JsonlReader(dataset, file_index, held_out, std::move(mapped)));
    case DatasetFormat::kTokenFile:
      if (file.layout.row_length > 0) {
        if (static_cast<int64_t>(file.layout.row_length) < dataset.options().context_size) {
          return absl::InvalidArgumentError(absl::StrCat(
              file.path, ": rows of ", file.layout.description, " hold ", file.layout.row_length,
              " ids, fewer than context_size ", dataset.options().context_size,
              "; rows are used as they are, so each must fill a context"));
        }
        return std::unique_ptr<FileDocumentReader>(
            new TokenRowReader(dataset, file_index, held_out, std::move(mapped)));
      }
      return std::unique_ptr<FileDocumentReader>(
          new TokenStreamReader(dataset, file_index, held_out, std::move(mapped)));
  }
  return absl::InternalError("unknown dataset format");
}

}  // namespace sae::data
