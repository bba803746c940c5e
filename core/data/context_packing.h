// Packing documents into contexts, the seed's ActivationsStore rule (docs/definitions.md).
//
// Every document gets a BOS in front; documents are concatenated into contexts of exactly
// context_size ids; when a document overflows a context, the rest continues in the next context
// after another BOS, so every context starts with BOS. With prepend_bos false, documents are
// concatenated with neither. For example, context_size 4 and documents [1 2 3 4 5] and [6]:
//   prepend_bos:  [B 1 2 3] [B 4 5 B] [B 6 ...
//   without:      [1 2 3 4] [5 6 ...
// A context that has room for just the BOS of the next document ends with that BOS, and the
// document starts over after a BOS in the next context (the seed does the same).
#ifndef SAE_CORE_DATA_CONTEXT_PACKING_H_
#define SAE_CORE_DATA_CONTEXT_PACKING_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/data/token_sequence.h"

namespace sae::data {

struct PackingOptions {
  int64_t context_size = 128;  // ids per context; at least 2 with prepend_bos
  bool prepend_bos = true;
  int32_t bos_token_id = 50256;
};

// Appends to `context` (holding fewer than context_size ids) the next piece of `document` that
// starts at document id `consumed` (< document.size()): a BOS when prepend_bos, then as many of
// the remaining ids as fit. Returns the new count of consumed ids; the document is done when it
// equals document.size(), and the context is full when it holds context_size ids.
size_t AppendDocumentPiece(const PackingOptions& options, const TokenSequence& document,
                           size_t consumed, std::vector<int32_t>* context);

// The full contexts that packing `documents` in order yields; ids left over for an incomplete
// last context are dropped. Empty documents are skipped, as readers skip them.
std::vector<std::vector<int32_t>> PackDocuments(const PackingOptions& options,
                                                const std::vector<std::vector<int32_t>>& documents);

}  // namespace sae::data

#endif  // SAE_CORE_DATA_CONTEXT_PACKING_H_
