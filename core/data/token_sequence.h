// The token ids of one document: owned (tokenised text, JSON arrays) or a view of a token file.
#ifndef SAE_CORE_DATA_TOKEN_SEQUENCE_H_
#define SAE_CORE_DATA_TOKEN_SEQUENCE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace sae::data {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "token files are little-endian and are read in place");

// A sequence of token ids. A view does not own its bytes: it is valid while the file it points
// into stays mapped (for a DocumentStream, until its next call to Next). Cheap to move.
class TokenSequence {
 public:
  TokenSequence() = default;

  static TokenSequence Owned(std::vector<int32_t> tokens) {
    TokenSequence sequence;
    sequence.owned_ = std::move(tokens);
    sequence.size_ = sequence.owned_.size();
    return sequence;
  }

  // `count` little-endian ids of `width` bytes each (2: uint16; 4: int32 or uint32 below 2^31).
  static TokenSequence View(const char* bytes, size_t count, int width) {
    TokenSequence sequence;
    sequence.bytes_ = bytes;
    sequence.size_ = count;
    sequence.width_ = width;
    return sequence;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  int32_t operator[](size_t i) const {
    if (width_ == 0) return owned_[i];
    if (width_ == 2) {
      uint16_t value;
      std::memcpy(&value, bytes_ + 2 * i, 2);
      return value;
    }
    int32_t value;
    std::memcpy(&value, bytes_ + 4 * i, 4);
    return value;
  }

  // Appends ids [begin, begin + count) to `out`. Requires begin + count <= size().
  void AppendTo(size_t begin, size_t count, std::vector<int32_t>* out) const {
    if (width_ == 0) {
      out->insert(out->end(), owned_.begin() + begin, owned_.begin() + begin + count);
      return;
    }
    size_t old_size = out->size();
    out->resize(old_size + count);
    int32_t* target = out->data() + old_size;
    if (width_ == 4) {
      std::memcpy(target, bytes_ + 4 * begin, 4 * count);
      return;
    }
    const char* source = bytes_ + 2 * begin;
    for (size_t i = 0; i < count; ++i) {
      uint16_t value;
      std::memcpy(&value, source + 2 * i, 2);
      target[i] = value;
    }
  }

  std::vector<int32_t> ToVector() const {
    std::vector<int32_t> tokens;
    tokens.reserve(size_);
    AppendTo(0, size_, &tokens);
    return tokens;
  }

 private:
  std::vector<int32_t> owned_;
  const char* bytes_ = nullptr;
  size_t size_ = 0;
  int width_ = 0;  // 0: owned_
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_TOKEN_SEQUENCE_H_
