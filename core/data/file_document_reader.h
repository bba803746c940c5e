// Reads the documents of one dataset file in order (internal to core/data; DocumentStream is
// the public way to read documents).
#ifndef SAE_CORE_DATA_FILE_DOCUMENT_READER_H_
#define SAE_CORE_DATA_FILE_DOCUMENT_READER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "core/data/dataset.h"
#include "core/data/token_sequence.h"

namespace sae::data {

// A document of one file: where it starts (in the file's units) and its ids. Empty documents
// (no bytes, no ids) do not exist: readers skip them.
struct FileDocument {
  uint64_t start = 0;
  TokenSequence tokens;
};

// Every format defines where documents start; a reader moves from one start to the next.
// Seek(p) == p whenever p is a document start or a value position() returned, so a position
// saved from position() resumes exactly. Not thread-safe.
class FileDocumentReader {
 public:
  // A reader for file `file_index` of `dataset`, positioned at its start, that returns the
  // held-out documents (Dataset::IsHeldOut) when `held_out`, the others otherwise; it skips the
  // rest without tokenising or parsing them. The dataset must outlive the reader.
  static absl::StatusOr<std::unique_ptr<FileDocumentReader>> Open(const Dataset& dataset,
                                                                  size_t file_index, bool held_out);

  virtual ~FileDocumentReader() = default;

  // Moves to the first document that starts at or after `offset`.
  virtual void Seek(uint64_t offset) = 0;

  // Where the next document is searched from: a document start, or the file's size.
  virtual uint64_t position() const = 0;

  // Reads the next document of the reader's side of the split when it starts before `end`,
  // returning true, and moves past it; returns false when no such document starts before `end`. A
  // view into the file in `document` stays valid while the reader lives. Errors name the file and
  // the line or offset.
  virtual absl::StatusOr<bool> Next(uint64_t end, FileDocument* document) = 0;

 protected:
  FileDocumentReader(const Dataset& dataset, size_t file_index, bool held_out)
      : dataset_(dataset), file_begin_(dataset.file_begin(file_index)), held_out_(held_out) {}

  // Whether the document starting at `start` (in the file's units) is on the reader's side.
  bool Wanted(uint64_t start) const { return dataset_.IsHeldOut(file_begin_ + start) == held_out_; }

  const Dataset& dataset_;

 private:
  uint64_t file_begin_;
  bool held_out_;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_FILE_DOCUMENT_READER_H_
