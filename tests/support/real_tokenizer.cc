#include "support/real_tokenizer.h"

#include <memory>

#include "absl/status/statusor.h"

namespace sae::support {

void RealTokenizerTest::SetUpTestSuite() {
  if (tokenizer_ != nullptr || load_error_ != nullptr) return;  // loaded by an earlier suite
  absl::StatusOr<std::unique_ptr<tokenizer::Gpt2Tokenizer>> loaded =
      tokenizer::Gpt2Tokenizer::Load(tokenizer::DefaultTokenizerDir());
  if (loaded.ok()) {
    tokenizer_ = loaded->release();  // kept for the process's life, shared by the suites
  } else {
    load_error_ = new std::string(loaded.status().ToString());
  }
}

void RealTokenizerTest::SetUp() {
  ASSERT_NE(tokenizer_, nullptr) << "cannot load the GPT-2 tokenizer from "
                                 << tokenizer::DefaultTokenizerDir()
                                 << " (run scripts/fetch-assets.sh to install the real GPT-2 "
                                    "files): "
                                 << *load_error_;
}

}  // namespace sae::support
