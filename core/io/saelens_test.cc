#include "core/io/saelens.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "support/temp_dir.h"

namespace sae::io {
namespace {

using ::testing::HasSubstr;

class SaeLensTest : public ::testing::Test {
 protected:
  SaeLensSae Example(const std::string& architecture) {
    at::manual_seed(1);
    SaeLensSae sae;
    sae.W_enc = at::randn({8, 32});
    sae.b_enc = at::randn({32});
    sae.W_dec = at::randn({32, 8});
    sae.b_dec = at::randn({8});
    sae.sparsity = at::log10(at::rand({32}) + 1e-10);
    sae.metadata.architecture = architecture;
    sae.metadata.k = architecture == "topk" ? 4 : 0;
    sae.metadata.hook_name = "blocks.2.hook_resid_pre";
    sae.metadata.hook_layer = 2;
    sae.metadata.dataset_path = "/data/corpus.jsonl";
    return sae;
  }

  const support::TempDir temp_{"saelens_test"};
  const std::string dir_ = temp_.File("sae");  // made by WriteSaeLens
};

TEST_F(SaeLensTest, ExportThenImportGivesIdenticalTensors) {
  SaeLensSae sae = Example("standard");
  ASSERT_TRUE(WriteSaeLens(dir_, sae).ok());
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(at::equal(back->W_enc, sae.W_enc));
  EXPECT_TRUE(at::equal(back->b_enc, sae.b_enc));
  EXPECT_TRUE(at::equal(back->W_dec, sae.W_dec));
  EXPECT_TRUE(at::equal(back->b_dec, sae.b_dec));
  EXPECT_TRUE(at::equal(back->sparsity, sae.sparsity));
  EXPECT_EQ(back->metadata.hook_name, "blocks.2.hook_resid_pre");
  EXPECT_EQ(back->metadata.hook_layer, 2);
  EXPECT_EQ(back->metadata.architecture, "standard");
}

TEST_F(SaeLensTest, CfgJsonCarriesEveryFieldSaeLensReads) {
  ASSERT_TRUE(WriteSaeLens(dir_, Example("topk")).ok());
  auto cfg = nlohmann::json::parse(*ReadFile(dir_ + "/cfg.json"));
  for (const char* key :
       {"d_in", "d_sae", "dtype", "device", "model_name", "hook_name", "hook_layer",
        "hook_head_index", "context_size", "prepend_bos", "dataset_path", "apply_b_dec_to_input",
        "normalize_activations", "architecture"}) {
    EXPECT_TRUE(cfg.contains(key)) << key;
  }
  EXPECT_EQ(cfg["d_in"], 8);
  EXPECT_EQ(cfg["d_sae"], 32);
  EXPECT_TRUE(cfg["hook_head_index"].is_null());
  EXPECT_EQ(cfg["architecture"], "topk");
  EXPECT_EQ(cfg["k"], 4);
  EXPECT_EQ(cfg["activation_fn_kwargs"]["k"], 4);
  auto file = SafetensorsFile::Open(dir_ + "/sae_weights.safetensors");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("W_enc")->shape, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ((*file)->Find("W_dec")->shape, (std::vector<int64_t>{32, 8}));
  auto sparsity = SafetensorsFile::Open(dir_ + "/sparsity.safetensors");
  ASSERT_TRUE(sparsity.ok());
  EXPECT_NE((*sparsity)->Find("sparsity"), nullptr);
}

TEST_F(SaeLensTest, WeightsThatContradictCfgAreRejected) {
  SaeLensSae sae = Example("standard");
  ASSERT_TRUE(WriteSaeLens(dir_, sae).ok());
  ASSERT_TRUE(SaveTensors(dir_ + "/sae_weights.safetensors", {{"W_enc", at::zeros({8, 16})},
                                                              {"b_enc", sae.b_enc},
                                                              {"W_dec", sae.W_dec},
                                                              {"b_dec", sae.b_dec}})
                  .ok());
  auto back = ReadSaeLens(dir_);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(back.status().message()),
              HasSubstr("'W_enc' has shape [8,16], expected [8,32]"));
}

TEST_F(SaeLensTest, MissingFolderAndBadCfgAreClearErrors) {
  EXPECT_EQ(ReadSaeLens(dir_).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(MakeDirectories(dir_).ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/cfg.json", R"({"d_in": 8})").ok());
  EXPECT_THAT(std::string(ReadSaeLens(dir_).status().message()), HasSubstr("\"d_sae\""));
}

}  // namespace
}  // namespace sae::io
