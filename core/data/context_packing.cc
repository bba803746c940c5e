#include "core/data/context_packing.h"

#include <algorithm>

namespace sae::data {

size_t AppendDocumentPiece(const PackingOptions& options, const TokenSequence& document,
                           size_t consumed, std::vector<int32_t>* context) {
  if (options.prepend_bos) context->push_back(options.bos_token_id);
  size_t room = static_cast<size_t>(options.context_size) - context->size();
  size_t take = std::min(room, document.size() - consumed);
  document.AppendTo(consumed, take, context);
  return consumed + take;
}

std::vector<std::vector<int32_t>> PackDocuments(
    const PackingOptions& options, const std::vector<std::vector<int32_t>>& documents) {
  std::vector<std::vector<int32_t>> contexts;
  std::vector<int32_t> context;
  for (const std::vector<int32_t>& ids : documents) {
    TokenSequence document = TokenSequence::Owned(ids);
    size_t consumed = 0;
    while (consumed < document.size()) {
      consumed = AppendDocumentPiece(options, document, consumed, &context);
      if (static_cast<int64_t>(context.size()) == options.context_size) {
        contexts.push_back(std::move(context));
        context.clear();
      }
    }
  }
  return contexts;
}

}  // namespace sae::data
