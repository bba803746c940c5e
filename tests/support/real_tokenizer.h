// Test support: the GPT-2 tokenizer on the real files (tokenizer::DefaultTokenizerDir(), which
// scripts/fetch-assets.sh fills), loaded once per test binary.
#ifndef SAE_TESTS_SUPPORT_REAL_TOKENIZER_H_
#define SAE_TESTS_SUPPORT_REAL_TOKENIZER_H_

#include <string>

#include "core/tokenizer/gpt2_tokenizer.h"
#include "gtest/gtest.h"

namespace sae::support {

// A fixture whose tests share the real GPT-2 tokenizer. A missing or broken file fails every
// test of the suite, with the reason. Derive a suite from it:
//   class TextDatasetTest : public support::RealTokenizerTest {};
class RealTokenizerTest : public ::testing::Test {
 public:
  static void SetUpTestSuite();

 protected:
  void SetUp() override;

  // The tokenizer; valid in every test (SetUp fails the test otherwise).
  static const tokenizer::Gpt2Tokenizer* tokenizer() { return tokenizer_; }

 private:
  static inline const tokenizer::Gpt2Tokenizer* tokenizer_ = nullptr;
  static inline std::string* load_error_ = nullptr;
};

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_REAL_TOKENIZER_H_
