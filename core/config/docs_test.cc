// docs/config.md and examples/*.yaml checked against the schema.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/config/run_config.h"
#include "core/config/saelens_keys.h"
#include "core/config/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/binaries.h"

namespace sae::config {
namespace {

using support::SourceDir;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct DocumentedKey {
  std::string default_text;
  std::string section;
  int line = 0;
};

// Rows of the key tables: | `name` | `default` | ... under "## Section" headings.
std::map<std::string, DocumentedKey> DocumentedKeys(const std::string& markdown) {
  static const std::regex kRow(R"(^\| `([a-z0-9_]+)` \| `([^`]*)` \|)");
  std::map<std::string, DocumentedKey> keys;
  std::istringstream lines(markdown);
  std::string line;
  std::string section;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (line.rfind("## ", 0) == 0) section = line.substr(3);
    std::smatch match;
    if (!std::regex_search(line, match, kRow)) continue;
    EXPECT_EQ(keys.count(match[1]), 0u) << match[1] << " is documented twice";
    keys[match[1]] = {match[2], section, number};
  }
  return keys;
}

TEST(DocsConfigMdTest, DocumentsEveryKeyWithItsDefaultInItsGroup) {
  std::string markdown = ReadText(SourceDir() + "/docs/config.md");
  ASSERT_FALSE(markdown.empty()) << "docs/config.md not found under " << SourceDir();
  std::map<std::string, DocumentedKey> documented = DocumentedKeys(markdown);
  for (const KeySpec& key : RunConfigKeys()) {
    auto it = documented.find(key.name);
    if (it == documented.end()) {
      ADD_FAILURE() << "docs/config.md does not document " << key.name << " (default "
                    << key.default_text << ")";
      continue;
    }
    EXPECT_EQ(it->second.default_text, key.default_text)
        << "docs/config.md:" << it->second.line << ": default of " << key.name;
    EXPECT_EQ(it->second.section, key.group)
        << "docs/config.md:" << it->second.line << ": section of " << key.name;
  }
}

TEST(DocsConfigMdTest, DocumentsNoKeyThatDoesNotExist) {
  std::string markdown = ReadText(SourceDir() + "/docs/config.md");
  for (const auto& [name, documented] : DocumentedKeys(markdown)) {
    EXPECT_NE(FindKey(name), nullptr) << "docs/config.md:" << documented.line << " documents "
                                      << name << ", which is not a key of run.yaml";
  }
}

TEST(DocsConfigMdTest, OpensWithAnExampleThatParses) {
  std::string markdown = ReadText(SourceDir() + "/docs/config.md");
  size_t begin = markdown.find("```yaml\n");
  ASSERT_NE(begin, std::string::npos);
  begin += 8;
  size_t end = markdown.find("```", begin);
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(markdown.substr(begin, end - begin), "docs/config.md");
  EXPECT_TRUE(config.ok()) << config.status();
}

TEST(SchemaTest, DescribesEveryKeyInAKnownGroup) {
  const std::vector<std::string>& groups = RunConfigGroups();
  for (const KeySpec& key : RunConfigKeys()) {
    EXPECT_FALSE(key.description.empty()) << key.name;
    EXPECT_FALSE(key.allowed.empty()) << key.name;
    EXPECT_THAT(groups, ::testing::Contains(key.group)) << key.name;
    EXPECT_EQ(FindKey(key.name), &key);
    if (key.type == KeyType::kChoice) {
      EXPECT_FALSE(key.choices.empty()) << key.name;
    }
  }
}

TEST(SchemaTest, DefaultsReadBackAsTheDefaults) {
  for (const KeySpec& key : RunConfigKeys()) {
    std::string yaml = "model_path: /m\ndataset_path: /d\n";
    if (key.name != "model_path" && key.name != "dataset_path") {
      yaml += key.name + ": " + key.default_text + "\n";
    }
    absl::StatusOr<RunConfig> config = ParseRunConfig(yaml, "defaults.yaml");
    ASSERT_TRUE(config.ok()) << key.name << ": " << config.status();
    RunConfig expected;
    expected.model_path = "/m";
    expected.dataset_path = "/d";
    EXPECT_EQ(*config, expected) << key.name;
  }
}

TEST(SchemaTest, MarksTheKeysThisServiceAdded) {
  for (const char* ours : {"architecture", "k", "aux_k_coefficient", "model_path", "tokenizer_path",
                           "processing", "shuffle", "l1_warm_up_steps", "activation_servers",
                           "trainers", "max_restarts", "wire_dtype", "dead_tokens_threshold"}) {
    ASSERT_NE(FindKey(ours), nullptr) << ours;
    EXPECT_EQ(FindKey(ours)->origin, KeyOrigin::kOurs) << ours;
  }
  EXPECT_EQ(FindKey("lr")->origin, KeyOrigin::kSeed);
  EXPECT_EQ(FindKey("lr")->allowed, "number > 0");
  EXPECT_EQ(FindKey("d_in")->allowed, "integer >= 1 or null");
  EXPECT_EQ(FindKey("architecture")->allowed,
            "standard, topk, batchtopk, jumprelu, gated, matryoshka_batchtopk");
  EXPECT_EQ(FindKey("matryoshka_widths")->allowed, "list of integers");
}

TEST(SchemaTest, SuggestsTheClosestKeyForATypo) {
  EXPECT_EQ(ClosestKey("l1_coeficient"), "l1_coefficient");
  EXPECT_EQ(ClosestKey("hook_pont_layer"), "hook_point_layer");
  EXPECT_EQ(ClosestKey("expansion_factr"), "expansion_factor");
  EXPECT_EQ(ClosestKey("Expansion_Factor"), "expansion_factor");
  EXPECT_EQ(ClosestKey("completely_different"), "");
}

// docs/config.md's table of SAELens 6 names: rows | `name` | ... in section "SAELens 6 spelling".
TEST(DocsConfigMdTest, DocumentsEverySaeLens6Name) {
  std::string markdown = ReadText(SourceDir() + "/docs/config.md");
  size_t begin = markdown.find("\n## SAELens 6 spelling\n");
  ASSERT_NE(begin, std::string::npos) << "docs/config.md has no section SAELens 6 spelling";
  size_t end = markdown.find("\n## ", begin + 1);
  std::string section = markdown.substr(begin, end - begin);
  for (const internal::PeerKey& peer : internal::PeerKeys()) {
    EXPECT_NE(section.find("| `" + peer.name + "` |"), std::string::npos)
        << "docs/config.md (SAELens 6 spelling) does not list " << peer.name;
  }
}

TEST(ExamplesTest, EveryExampleParses) {
  std::filesystem::path dir = std::filesystem::path(SourceDir()) / "examples";
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    absl::StatusOr<RunConfig> config = LoadRunConfig(entry.path().string());
    EXPECT_TRUE(config.ok()) << config.status();
    ++parsed;
  }
  EXPECT_GE(parsed, 1);
}

TEST(ExamplesTest, SaeLens6TopKReadsAsTheSameKeysInTheSeedsSpelling) {
  absl::StatusOr<RunConfig> c = LoadRunConfig(SourceDir() + "/examples/saelens6-topk.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hook_point, "blocks.2.hook_resid_pre");
  EXPECT_EQ(c->architecture, Architecture::kTopK);
  EXPECT_EQ(c->k, 64);
  EXPECT_EQ(c->d_sae, 24576);
  EXPECT_EQ(c->total_training_tokens, 300'000'000);
  EXPECT_EQ(c->train_batch_size, 4096);
  EXPECT_EQ(c->store_batch_size, 32);
  EXPECT_EQ(c->run_name, "saelens6-topk");
  EXPECT_EQ(c->lr_scheduler_name, LrScheduler::kConstant);
  EXPECT_EQ(c->source.spellings.at("k"), "sae.k");
  // What --dry-run prints reads back as the same config.
  absl::StatusOr<RunConfig> again = ParseRunConfig(ToYaml(*c), "dry-run.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);
}

TEST(ExamplesTest, SaeLens6JumpReLUReadsTheTrainingOptionsWithSaeLensMeanings) {
  absl::StatusOr<RunConfig> c = LoadRunConfig(SourceDir() + "/examples/saelens6-jumprelu.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->source.warnings.empty()) << c->source.warnings.front();
  EXPECT_EQ(c->architecture, Architecture::kJumpReLU);
  EXPECT_EQ(c->jumprelu_sparsity_loss_mode, JumpReLUSparsityLoss::kQuadratic);
  EXPECT_EQ(c->target_l0, 64.0);
  EXPECT_EQ(c->normalize_activations, NormalizeActivations::kExpectedAverageOnlyIn);
  EXPECT_EQ(c->n_batches_for_norm_estimate, 100);
  EXPECT_FALSE(c->apply_b_dec_to_input);
  EXPECT_EQ(c->lr_decay_steps, 2000);
  absl::StatusOr<RunConfig> again = ParseRunConfig(ToYaml(*c), "dry-run.yaml");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *c);
}

TEST(ExamplesTest, Gpt2SmallResidIsTheSeedsRecipe) {
  absl::StatusOr<RunConfig> c = LoadRunConfig(SourceDir() + "/examples/gpt2-small-resid.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(ResolveAgainstModel(*c, {12, 768, 12, 3072, 1024, 50257}).ok());
  EXPECT_EQ(c->model_name, "gpt2-small");
  EXPECT_EQ(c->hook_point, "blocks.2.hook_resid_pre");
  EXPECT_EQ(c->hook_point_layer, 2);
  EXPECT_EQ(c->d_in, 768);
  EXPECT_EQ(c->d_sae, 768 * 64);
  EXPECT_EQ(c->b_dec_init_method, BDecInitMethod::kGeometricMedian);
  EXPECT_EQ(c->lr, 4e-4);
  EXPECT_EQ(c->l1_coefficient, 8e-5);
  EXPECT_EQ(c->lr_scheduler_name, LrScheduler::kConstantWithWarmup);
  EXPECT_EQ(c->train_batch_size, 4096);
  EXPECT_EQ(c->context_size, 128);
  EXPECT_EQ(c->lr_warm_up_steps, 5000);
  EXPECT_EQ(c->n_batches_in_buffer, 128);
  EXPECT_EQ(c->total_training_tokens, 300'000'000);
  EXPECT_EQ(c->store_batch_size, 32);
  EXPECT_TRUE(c->use_ghost_grads);
  EXPECT_EQ(c->feature_sampling_method, std::nullopt);
  EXPECT_EQ(c->feature_sampling_window, 1000);
  EXPECT_EQ(c->dead_feature_window, 5000);
  EXPECT_EQ(c->dead_feature_threshold, 1e-6);
  EXPECT_EQ(c->wandb_log_frequency, 100);
  EXPECT_EQ(c->n_checkpoints, 10);
  EXPECT_EQ(c->seed, 42);
  EXPECT_EQ(c->dtype, DType::kFloat32);
  EXPECT_EQ(c->is_dataset_tokenized, false);
}

}  // namespace
}  // namespace sae::config
