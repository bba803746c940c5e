#include "core/data/document_stream.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/data/file_document_reader.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::data {

DocumentStream::DocumentStream(std::shared_ptr<const Dataset> dataset, uint32_t shard_index,
                               uint32_t shard_count, ShardRange range)
    : dataset_(std::move(dataset)),
      shard_index_(shard_index),
      shard_count_(shard_count),
      range_(range) {
  uint64_t file_begin;
  first_file_ = dataset_->FileAt(range_.begin, &file_begin);
  last_file_ = dataset_->FileAt(range_.end - 1, &file_begin);
}

DocumentStream::~DocumentStream() = default;

absl::StatusOr<std::unique_ptr<DocumentStream>> DocumentStream::Open(
    std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count) {
  const bool held_out = shard_index == Dataset::kHeldOutShard;
  if (shard_count == 0 || (shard_index >= shard_count && !held_out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard_index, " of ", shard_count, " does not exist"));
  }
  ShardRange range = dataset->RangeOfShard(shard_index, shard_count);
  if (held_out && dataset->options().held_out_fraction == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        dataset->Describe(), " holds out nothing for evaluations (held_out_fraction is 0)"));
  }
  if (range.begin == range.end) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", shard_index, " of ", shard_count, " of ", dataset->Describe(),
                     " is empty: there are more shards than units of data; use fewer shards"));
  }
  std::unique_ptr<DocumentStream> stream(
      new DocumentStream(std::move(dataset), shard_index, shard_count, range));
  stream->position_ =
      DocumentPosition{0, stream->first_file_, stream->LocalBegin(stream->first_file_)};
  stream->epoch_read_from_start_ = true;
  return stream;
}

absl::StatusOr<std::unique_ptr<DocumentStream>> DocumentStream::OpenAt(
    std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count,
    const DocumentPosition& position) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<DocumentStream> stream,
                       Open(std::move(dataset), shard_index, shard_count));
  if (position.file_index < stream->first_file_ || position.file_index > stream->last_file_ ||
      position.offset < stream->LocalBegin(position.file_index) ||
      position.offset > stream->dataset_->files()[position.file_index].units) {
    return absl::InvalidArgumentError(
        absl::StrCat("position (epoch ", position.epoch, ", file ", position.file_index,
                     ", offset ", position.offset, ") lies outside shard ", shard_index, " of ",
                     shard_count, " of ", stream->dataset_->Describe()));
  }
  stream->position_ = position;
  stream->epoch_read_from_start_ = position.file_index == stream->first_file_ &&
                                   position.offset == stream->LocalBegin(stream->first_file_);
  return stream;
}

uint64_t DocumentStream::LocalBegin(uint64_t file_index) const {
  uint64_t file_begin = dataset_->file_begin(file_index);
  return range_.begin > file_begin ? range_.begin - file_begin : 0;
}

uint64_t DocumentStream::LocalEnd(uint64_t file_index) const {
  uint64_t file_begin = dataset_->file_begin(file_index);
  return std::min(dataset_->files()[file_index].units, range_.end - file_begin);
}

absl::StatusOr<bool> DocumentStream::NextOfThisEpoch(Document* document) {
  const bool held_out = shard_index_ == Dataset::kHeldOutShard;
  while (true) {
    if (reader_ == nullptr) {
      SAE_ASSIGN_OR_RETURN(reader_,
                           FileDocumentReader::Open(*dataset_, position_.file_index, held_out));
      reader_->Seek(position_.offset);
    }
    FileDocument found;
    SAE_ASSIGN_OR_RETURN(bool has_document, reader_->Next(LocalEnd(position_.file_index), &found));
    if (has_document) {
      document->position = DocumentPosition{position_.epoch, position_.file_index, found.start};
      document->tokens = std::move(found.tokens);
      position_.offset = reader_->position();
      ++documents_this_epoch_;
      return true;
    }
    if (position_.file_index < last_file_) {
      reader_.reset();
      ++position_.file_index;
      position_.offset = LocalBegin(position_.file_index);
      continue;
    }
    if (epoch_read_from_start_ && documents_this_epoch_ == 0 && held_out) {
      return absl::FailedPreconditionError(absl::StrCat(
          dataset_->Describe(), " holds out no document: each is held out with probability ",
          dataset_->options().held_out_fraction,
          " (held_out_fraction) and none was drawn; raise the fraction or use more data"));
    }
    if (epoch_read_from_start_ && documents_this_epoch_ == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", shard_index_, " of ", shard_count_, " of ", dataset_->Describe(),
          " holds no documents (units ", range_.begin, " to ", range_.end,
          " hold only blank lines, separators, delimiters or held-out documents, or no document "
          "starts there); use fewer shards"));
    }
    return false;
  }
}

absl::Status DocumentStream::Next(Document* document) {
  while (true) {
    SAE_ASSIGN_OR_RETURN(bool has_document, NextOfThisEpoch(document));
    if (has_document) return absl::OkStatus();
    ++position_.epoch;
    const std::string shard = shard_index_ == Dataset::kHeldOutShard
                                  ? std::string("the held-out documents")
                                  : absl::StrCat("shard ", shard_index_, " of ", shard_count_);
    spdlog::warn(
        "dataset {}: {} served all its documents ({} this pass); starting epoch {}, so "
        "documents repeat from here",
        dataset_->options().dataset_path, shard, documents_this_epoch_, position_.epoch);
    if (position_.file_index != first_file_) reader_.reset();
    position_.file_index = first_file_;
    position_.offset = LocalBegin(first_file_);
    if (reader_ != nullptr) reader_->Seek(position_.offset);
    documents_this_epoch_ = 0;
    epoch_read_from_start_ = true;
  }
}

}  // namespace sae::data
