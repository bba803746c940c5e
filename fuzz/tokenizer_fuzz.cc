// The GPT-2 tokenizer on arbitrary bytes. Property (gpt2_tokenizer.h's contract): Decode(Encode
// (text)) is exactly `text`, for any bytes, with every id inside the vocabulary. Loads the real
// BPE files from DefaultTokenizerDir() (scripts/fetch-assets.sh installs them).
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_tokenizer.h"
#include "fuzz/scratch_dir.h"

using sae::fuzz::PropertyFailed;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = sae::fuzz::AsBytes(data, size);
  const auto& tokenizer = sae::fuzz::FuzzTokenizer();
  std::vector<int32_t> ids = tokenizer.Encode(text);
  for (int32_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size())
      PropertyFailed(absl::StrCat("id ", id, " out of range"));
  }
  auto decoded = tokenizer.Decode(ids);
  if (!decoded.ok()) PropertyFailed("Decode refuses Encode's ids: " + decoded.status().ToString());
  if (*decoded != text) {
    PropertyFailed(absl::StrCat("Decode(Encode(text)) != text: ", decoded->size(), " bytes for ",
                                text.size()));
  }
  return 0;
}
