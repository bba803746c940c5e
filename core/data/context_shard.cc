#include "core/data/context_shard.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"

namespace sae::data {

ContextShard::ContextShard(std::shared_ptr<const Dataset> dataset,
                           std::unique_ptr<DocumentStream> documents)
    : dataset_(std::move(dataset)),
      documents_(std::move(documents)),
      rows_are_contexts_(dataset_->rows_are_contexts()) {
  const DatasetOptions& options = dataset_->options();
  packing_.context_size = options.context_size;
  packing_.prepend_bos = options.prepend_bos;
  packing_.bos_token_id = options.bos_token_id;
}

ContextShard::~ContextShard() = default;

absl::StatusOr<std::unique_ptr<ContextShard>> ContextShard::Open(
    std::shared_ptr<const Dataset> dataset, uint32_t shard_index, uint32_t shard_count) {
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<DocumentStream> documents,
                       DocumentStream::Open(dataset, shard_index, shard_count));
  return std::unique_ptr<ContextShard>(new ContextShard(std::move(dataset), std::move(documents)));
}

absl::StatusOr<std::unique_ptr<ContextShard>> ContextShard::Resume(
    std::shared_ptr<const Dataset> dataset, const ShardCursor& cursor) {
  if (cursor.dataset_fingerprint != dataset->fingerprint()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the cursor (", cursor.DebugString(), ") belongs to other data than ",
                     dataset->Describe(), ": its files, sizes or format differ"));
  }
  if (cursor.file_index >= dataset->files().size()) {
    return absl::InvalidArgumentError(absl::StrCat("the cursor (", cursor.DebugString(),
                                                   ") names a file ", dataset->Describe(),
                                                   " does not have"));
  }
  DocumentPosition position{cursor.epoch, cursor.file_index, cursor.offset};
  SAE_ASSIGN_OR_RETURN(
      std::unique_ptr<DocumentStream> documents,
      DocumentStream::OpenAt(dataset, cursor.shard_index, cursor.shard_count, position));
  std::unique_ptr<ContextShard> shard(new ContextShard(std::move(dataset), std::move(documents)));
  shard->contexts_served_ = cursor.contexts_served;
  if (cursor.tokens_into_document > 0) {
    SAE_RETURN_IF_ERROR(shard->documents_->Next(&shard->document_));
    if (!(shard->document_.position == position) ||
        cursor.tokens_into_document >= shard->document_.tokens.size() ||
        shard->rows_are_contexts_) {
      return absl::InvalidArgumentError(absl::StrCat("the cursor (", cursor.DebugString(),
                                                     ") does not point into a document of ",
                                                     shard->dataset_->Describe()));
    }
    shard->has_document_ = true;
    shard->consumed_ = cursor.tokens_into_document;
  }
  return shard;
}

absl::Status ContextShard::Next(std::vector<int32_t>* context) {
  context->clear();
  context->reserve(static_cast<size_t>(packing_.context_size));
  if (rows_are_contexts_) {
    SAE_RETURN_IF_ERROR(documents_->Next(&document_));
    document_.tokens.AppendTo(0, static_cast<size_t>(packing_.context_size), context);
    ++contexts_served_;
    return absl::OkStatus();
  }
  while (static_cast<int64_t>(context->size()) < packing_.context_size) {
    if (!has_document_) {
      SAE_RETURN_IF_ERROR(documents_->Next(&document_));
      has_document_ = true;
      consumed_ = 0;
    }
    consumed_ = AppendDocumentPiece(packing_, document_.tokens, consumed_, context);
    if (consumed_ == document_.tokens.size()) has_document_ = false;
  }
  ++contexts_served_;
  return absl::OkStatus();
}

absl::Status ContextShard::NextBatch(int64_t count, std::vector<int32_t>* contexts) {
  contexts->clear();
  contexts->reserve(static_cast<size_t>(count * packing_.context_size));
  std::vector<int32_t> context;
  for (int64_t i = 0; i < count; ++i) {
    SAE_RETURN_IF_ERROR(Next(&context));
    contexts->insert(contexts->end(), context.begin(), context.end());
  }
  return absl::OkStatus();
}

ShardCursor ContextShard::cursor() const {
  ShardCursor cursor;
  cursor.shard_index = documents_->shard_index();
  cursor.shard_count = documents_->shard_count();
  cursor.dataset_fingerprint = dataset_->fingerprint();
  const DocumentPosition& position = has_document_ ? document_.position : documents_->position();
  cursor.epoch = position.epoch;
  cursor.file_index = position.file_index;
  cursor.offset = position.offset;
  cursor.tokens_into_document = has_document_ ? consumed_ : 0;
  cursor.contexts_served = contexts_served_;
  return cursor;
}

}  // namespace sae::data
