// GPT-2's byte-level alphabet: the reversible map between the 256 byte values and the printable
// Unicode characters in which vocab.json and merges.txt spell their symbols.
#ifndef SAE_CORE_TOKENIZER_BYTE_LEVEL_H_
#define SAE_CORE_TOKENIZER_BYTE_LEVEL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace sae::tokenizer {

// The character GPT-2 writes byte `byte` as (bytes_to_unicode() of OpenAI's encoder.py): the
// printable Latin-1 bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF stand for themselves; the
// other 68 bytes map, in byte order, to U+0100..U+0143 (so ' ' is 'Ġ' U+0120, '\n' is 'Ċ').
char32_t ByteToSymbolChar(uint8_t byte);

// The raw bytes that the byte-level symbol `symbol` (UTF-8) spells, or nullopt when `symbol` is
// not valid UTF-8 or holds a character outside the byte-level alphabet.
std::optional<std::string> SymbolToBytes(absl::string_view symbol);

// `bytes` spelled in the byte-level alphabet, as UTF-8 (the inverse of SymbolToBytes).
std::string BytesToSymbol(absl::string_view bytes);

}  // namespace sae::tokenizer

#endif  // SAE_CORE_TOKENIZER_BYTE_LEVEL_H_
