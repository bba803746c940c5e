#include "core/tokenizer/gpt2_tokenizer.h"

#include <sys/stat.h>

#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/bpe_vocabulary.h"
#include "core/tokenizer/cache_dir.h"
#include "core/tokenizer/piece_cache.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::tokenizer {
namespace {

constexpr absl::string_view kEndOfTextText = "<|endoftext|>";

// The two spellings of the file pair.
struct FileNames {
  const char* vocabulary;
  const char* merges;
};
constexpr FileNames kHuggingFaceNames = {"vocab.json", "merges.txt"};
constexpr FileNames kOpenAiNames = {"encoder.json", "vocab.bpe"};

// Up to kCacheCapacity pieces that needed the merge loop are remembered (a few MB); pieces longer
// than kMaxCachedPieceBytes are rare and not worth the memory.
constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kMaxCachedPieceBytes = 64;

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsFolder(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class ByteLevelBpeTokenizer final : public Gpt2Tokenizer {
 public:
  ByteLevelBpeTokenizer(std::unique_ptr<PreTokenizer> pre_tokenizer, BpeVocabulary vocabulary)
      : pre_tokenizer_(std::move(pre_tokenizer)),
        model_(std::move(vocabulary)),
        end_of_text_(model_.FindToken(kEndOfTextText).value_or(-1)),
        cache_(kCacheCapacity, kMaxCachedPieceBytes) {}

  std::vector<int32_t> Encode(std::string_view input) const override {
    absl::string_view text(input.data(), input.size());
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 4 + 1);
    auto encode_piece = [&](absl::string_view piece) { EncodePiece(piece, &ids); };
    while (true) {
      size_t special = end_of_text_ >= 0 ? text.find(kEndOfTextText) : absl::string_view::npos;
      pre_tokenizer_->Split(text.substr(0, special), encode_piece);
      if (special == absl::string_view::npos) break;
      ids.push_back(end_of_text_);
      text.remove_prefix(special + kEndOfTextText.size());
    }
    return ids;
  }

  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> tokens) const override {
    size_t length = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= model_.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", tokens[i], " (at position ", i,
                         ") is outside the vocabulary: ids run from 0 to ", model_.size() - 1));
      }
      length += model_.TokenBytes(tokens[i]).size();
    }
    std::string text;
    text.reserve(length);
    for (int32_t id : tokens) {
      absl::string_view bytes = model_.TokenBytes(id);
      text.append(bytes.data(), bytes.size());
    }
    return text;
  }

  int32_t vocab_size() const override { return model_.size(); }

 private:
  void EncodePiece(absl::string_view piece, std::vector<int32_t>* ids) const {
    if (model_.EncodeWhole(piece, ids) || cache_.Lookup(piece, ids)) return;
    size_t first = ids->size();
    model_.Merge(piece, ids);
    cache_.Insert(piece, absl::MakeConstSpan(ids->data() + first, ids->size() - first));
  }

  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  BpeModel model_;
  int32_t end_of_text_;  // id of "<|endoftext|>", or -1 when the vocabulary lacks it
  mutable PieceCache cache_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> Gpt2Tokenizer::Load(const std::string& folder) {
  auto not_found = [&](absl::string_view what) {
    return absl::NotFoundError(absl::StrCat(
        what, ": a GPT-2 tokenizer folder holds ", kHuggingFaceNames.vocabulary, " + ",
        kHuggingFaceNames.merges, " (Hugging Face names) or ", kOpenAiNames.vocabulary, " + ",
        kOpenAiNames.merges, " (OpenAI names); scripts/fetch-assets.sh installs them in ",
        DefaultTokenizerDir()));
  };
  if (!IsFolder(folder)) return not_found(absl::StrCat("no folder ", folder));
  std::string vocabulary_path;
  std::string merges_path;
  for (const FileNames& names : {kHuggingFaceNames, kOpenAiNames}) {
    std::string vocabulary = absl::StrCat(folder, "/", names.vocabulary);
    std::string merges = absl::StrCat(folder, "/", names.merges);
    if (IsFile(vocabulary) && IsFile(merges)) {
      vocabulary_path = std::move(vocabulary);
      merges_path = std::move(merges);
      break;
    }
  }
  if (vocabulary_path.empty()) {
    return not_found(absl::StrCat("no complete pair of tokenizer files in ", folder));
  }

  BpeVocabulary vocabulary;
  SAE_ASSIGN_OR_RETURN(std::string vocabulary_json, ReadFile(vocabulary_path));
  SAE_RETURN_IF_ERROR(ParseVocabularyJson(vocabulary_json, vocabulary_path, &vocabulary));
  vocabulary_json = std::string();
  SAE_ASSIGN_OR_RETURN(std::string merges_text, ReadFile(merges_path));
  SAE_RETURN_IF_ERROR(ParseMerges(merges_text, merges_path, &vocabulary));
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> pre_tokenizer, PreTokenizer::Create());
  return std::unique_ptr<Gpt2Tokenizer>(
      new ByteLevelBpeTokenizer(std::move(pre_tokenizer), std::move(vocabulary)));
}

std::string DefaultTokenizerDir() {
  const char* explicit_dir = std::getenv("SAE_TOKENIZER_DIR");
  if (explicit_dir != nullptr && explicit_dir[0] != '\0') return explicit_dir;
  return SaeCacheDir() + "/gpt2-tokenizer";
}

}  // namespace sae::tokenizer
