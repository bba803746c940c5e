// saectl tokenize | detokenize: GPT-2 byte-level BPE from the command line.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "tools/saectl/command.h"

namespace sae::saectl {
namespace {

struct TokenizeFlags {
  std::string tokenizer = tokenizer::DefaultTokenizerDir();
  std::string text;
  std::string file;
  std::string output = "ids";
};

struct DetokenizeFlags {
  std::string tokenizer = tokenizer::DefaultTokenizerDir();
  std::string tokens;
};

// Token ids written as "15496,995" or as a JSON array "[15496, 995]".
absl::StatusOr<std::vector<int32_t>> ParseTokenIds(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (absl::ConsumePrefix(&text, "[") && !absl::ConsumeSuffix(&text, "]")) {
    return absl::InvalidArgumentError("--tokens: a '[' without its closing ']'");
  }
  std::vector<int32_t> ids;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id;
    if (!absl::SimpleAtoi(piece, &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tokens: '", absl::StripAsciiWhitespace(piece),
                       "' is not a token id (expected comma-separated integers, e.g. 15496,995)"));
    }
    ids.push_back(id);
  }
  return ids;
}

absl::Status RunTokenize(const TokenizeFlags& flags, bool from_file) {
  std::string text = flags.text;
  if (from_file) {
    SAE_ASSIGN_OR_RETURN(text, ReadFile(flags.file));
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Gpt2Tokenizer> gpt2,
                       tokenizer::Gpt2Tokenizer::Load(flags.tokenizer));
  std::vector<int32_t> ids = gpt2->Encode(text);
  std::string joined = absl::StrJoin(ids, ",");
  if (flags.output == "json") joined = absl::StrCat("[", joined, "]");
  std::printf("%s\n", joined.c_str());
  return absl::OkStatus();
}

absl::Status RunDetokenize(const DetokenizeFlags& flags) {
  SAE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseTokenIds(flags.tokens));
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Gpt2Tokenizer> gpt2,
                       tokenizer::Gpt2Tokenizer::Load(flags.tokenizer));
  SAE_ASSIGN_OR_RETURN(std::string text, gpt2->Decode(ids));
  // The exact bytes, with nothing added, so that detokenize inverts tokenize --file.
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    return absl::InternalError("cannot write the text to standard output");
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterTokenizeCommands(CLI::App& app) {
  auto tokenize_flags = std::make_shared<TokenizeFlags>();
  CLI::App* tokenize =
      app.add_subcommand("tokenize", "Print the GPT-2 token ids of a text (byte-level BPE)");
  tokenize
      ->add_option("--tokenizer", tokenize_flags->tokenizer,
                   "Folder with vocab.json + merges.txt or encoder.json + vocab.bpe")
      ->capture_default_str();
  CLI::Option* text = tokenize->add_option("--text", tokenize_flags->text, "The text to encode");
  CLI::Option* file =
      tokenize->add_option("--file", tokenize_flags->file, "A file whose bytes to encode");
  text->excludes(file);
  tokenize
      ->add_option("-o,--output", tokenize_flags->output, "ids (comma-separated) | json (an array)")
      ->check(CLI::IsMember({"ids", "json"}))
      ->capture_default_str();
  tokenize->callback([tokenize_flags, text, file] {
    RunCommand([&]() -> absl::Status {
      if (text->count() == 0 && file->count() == 0) {
        return absl::InvalidArgumentError("tokenize needs --text S or --file F");
      }
      return RunTokenize(*tokenize_flags, file->count() > 0);
    });
  });

  auto detokenize_flags = std::make_shared<DetokenizeFlags>();
  CLI::App* detokenize = app.add_subcommand(
      "detokenize", "Print the exact text (bytes) of GPT-2 token ids, without a trailing newline");
  detokenize
      ->add_option("--tokenizer", detokenize_flags->tokenizer,
                   "Folder with vocab.json + merges.txt or encoder.json + vocab.bpe")
      ->capture_default_str();
  detokenize->add_option("--tokens", detokenize_flags->tokens, "Token ids, e.g. 15496,995")
      ->required();
  detokenize->callback(
      [detokenize_flags] { RunCommand([&] { return RunDetokenize(*detokenize_flags); }); });
}

}  // namespace sae::saectl
