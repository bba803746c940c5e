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

TEST_F(SaeLensTest, CfgJsonIsSaeLens6sWithTheOriginUnderMetadata) {
  SaeLensSae sae = Example("topk");
  sae.cfg = {{"training_tokens", 4096}};
  ASSERT_TRUE(WriteSaeLens(dir_, sae).ok());
  auto cfg = nlohmann::json::parse(*ReadFile(dir_ + "/cfg.json"));
  // SAELens 6's TopKSAEConfig.to_dict(): the architecture's fields at the top level.
  for (const char* key : {"architecture", "d_in", "d_sae", "dtype", "device",
                          "apply_b_dec_to_input", "normalize_activations", "reshape_activations",
                          "k", "rescale_acts_by_decoder_norm", "metadata"}) {
    EXPECT_TRUE(cfg.contains(key)) << key;
  }
  EXPECT_EQ(cfg["d_in"], 8);
  EXPECT_EQ(cfg["d_sae"], 32);
  EXPECT_EQ(cfg["architecture"], "topk");
  EXPECT_EQ(cfg["k"], 4);
  EXPECT_EQ(cfg["rescale_acts_by_decoder_norm"], false);
  EXPECT_FALSE(cfg.contains("hook_name")) << "the origin lives under metadata";
  const nlohmann::json& metadata = cfg["metadata"];
  EXPECT_EQ(metadata["sae_lens_version"], kSaeLensFormatVersion);
  EXPECT_EQ(metadata["hook_name"], "blocks.2.hook_resid_pre");
  EXPECT_TRUE(metadata["hook_head_index"].is_null());
  EXPECT_EQ(metadata["context_size"], 128);
  EXPECT_EQ(metadata["prepend_bos"], true);
  EXPECT_EQ(metadata["seqpos_slice"], nlohmann::json::array({nullptr}));
  EXPECT_EQ(metadata["model_from_pretrained_kwargs"]["center_writing_weights"], true);
  EXPECT_EQ(metadata["dataset_path"], "/data/corpus.jsonl");
  EXPECT_EQ(metadata["training_tokens"], 4096);
  auto file = SafetensorsFile::Open(dir_ + "/sae_weights.safetensors");
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->Find("W_enc")->shape, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ((*file)->Find("W_dec")->shape, (std::vector<int64_t>{32, 8}));
  auto sparsity = SafetensorsFile::Open(dir_ + "/sparsity.safetensors");
  ASSERT_TRUE(sparsity.ok());
  EXPECT_NE((*sparsity)->Find("sparsity"), nullptr);
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata.format, "saelens6");
  EXPECT_EQ(back->metadata.k, 4);
  EXPECT_TRUE(back->metadata.folded.empty());
}

// Writes cfg.json and the weights of a folder as another writer would.
void WriteFolder(const std::string& dir, const nlohmann::json& cfg, const NamedTensors& weights) {
  ASSERT_TRUE(MakeDirectories(dir).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/cfg.json", cfg.dump()).ok());
  ASSERT_TRUE(SaveTensors(dir + "/sae_weights.safetensors", weights).ok());
}

TEST_F(SaeLensTest, ReadsAPre6FlatTopKFolder) {
  SaeLensSae sae = Example("topk");
  WriteFolder(dir_,
              {{"d_in", 8}, {"d_sae", 32}, {"activation_fn_str", "topk"},
               {"activation_fn_kwargs", {{"k", 3}}}, {"hook_point", "blocks.4.hook_mlp_out"},
               {"hook_point_layer", 4}, {"context_size", 64}, {"sae_lens_version", "3.5.0"},
               {"model_from_pretrained_kwargs", {{"fold_ln", false}}}},
              {{"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec},
               {"b_dec", sae.b_dec}});
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata.format, "flat");
  EXPECT_EQ(back->metadata.sae_lens_version, "3.5.0");
  EXPECT_EQ(back->metadata.architecture, "topk");
  EXPECT_EQ(back->metadata.k, 3);
  EXPECT_EQ(back->metadata.hook_name, "blocks.4.hook_mlp_out");
  EXPECT_EQ(back->metadata.hook_layer, 4);
  EXPECT_EQ(back->metadata.context_size, 64);
  EXPECT_EQ(back->metadata.processing, "none");
  EXPECT_TRUE(at::equal(back->W_enc, sae.W_enc));
}

TEST_F(SaeLensTest, ReadsJumpReLUFoldersWithThresholdOrLogThreshold) {
  SaeLensSae sae = Example("jumprelu");
  at::Tensor threshold = at::rand({32}) + 0.1;
  nlohmann::json cfg = {{"d_in", 8},
                        {"d_sae", 32},
                        {"architecture", "jumprelu"},
                        {"metadata", {{"sae_lens_version", "6.5.0"},
                                      {"hook_name", "blocks.3.hook_resid_post"}}}};
  WriteFolder(dir_, cfg,
              {{"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec},
               {"b_dec", sae.b_dec}, {"threshold", threshold}});
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata.architecture, "jumprelu");
  EXPECT_EQ(back->metadata.hook_layer, 3);  // derived from the hook's name
  EXPECT_TRUE(at::equal(back->threshold, threshold));

  const std::string old = temp_.File("old_jumprelu");
  WriteFolder(old, cfg,
              {{"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec},
               {"b_dec", sae.b_dec}, {"log_threshold", threshold.log()}});
  auto from_log = ReadSaeLens(old);
  ASSERT_TRUE(from_log.ok()) << from_log.status();
  EXPECT_TRUE(at::allclose(from_log->threshold, threshold, 1e-6, 1e-6));

  // Written back, the threshold travels with it.
  const std::string again = temp_.File("again");
  ASSERT_TRUE(WriteSaeLens(again, *back).ok());
  auto reread = ReadSaeLens(again);
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_TRUE(at::equal(reread->threshold, threshold));
}

TEST_F(SaeLensTest, FoldsAnUnappliedDecoderBiasAndDecoderNormRescalingIntoTheWeights) {
  SaeLensSae sae = Example("topk");
  WriteFolder(dir_,
              {{"d_in", 8}, {"d_sae", 32}, {"architecture", "topk"}, {"k", 4},
               {"apply_b_dec_to_input", false}, {"rescale_acts_by_decoder_norm", true},
               {"metadata", {{"sae_lens_version", "6.54.12"}}}},
              {{"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec},
               {"b_dec", sae.b_dec}});
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->metadata.folded,
              ::testing::ElementsAre("apply_b_dec_to_input", "rescale_acts_by_decoder_norm"));
  EXPECT_EQ(back->cfg["apply_b_dec_to_input"], true);
  // SAELens 6's TopK with both settings, written out: h = (x W_enc + b_enc) * n, keep the top
  // k of relu(h), x_hat = (f / n) W_dec + b_dec, n the decoder row norms.
  at::Tensor x = at::randn({5, 8});
  at::Tensor n = sae.W_dec.norm(2, {1});
  at::Tensor h = at::addmm(sae.b_enc, x, sae.W_enc) * n;
  auto [values, indices] = h.topk(4, 1);
  at::Tensor f = at::zeros_like(h).scatter_(1, indices, at::relu(values));
  at::Tensor expected = (f / n).mm(sae.W_dec) + sae.b_dec;
  // Ours: (x - b_dec) W_enc + b_enc, top k, f W_dec + b_dec.
  at::Tensor h2 = at::addmm(back->b_enc, x - back->b_dec, back->W_enc);
  auto [v2, i2] = h2.topk(4, 1);
  at::Tensor f2 = at::zeros_like(h2).scatter_(1, i2, at::relu(v2));
  EXPECT_TRUE(at::allclose(f2.mm(back->W_dec) + back->b_dec, expected, 1e-5, 1e-5));
}

TEST_F(SaeLensTest, RefusesWhatItCannotCompute) {
  SaeLensSae sae = Example("standard");
  NamedTensors weights = {{"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec},
                          {"b_dec", sae.b_dec}};
  WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"architecture", "transcoder"}}, weights);
  auto transcoder = ReadSaeLens(dir_);
  EXPECT_EQ(transcoder.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(transcoder.status().message()),
              HasSubstr("architecture 'transcoder' is not supported"));
  WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"architecture", "gated"}}, weights);
  EXPECT_THAT(std::string(ReadSaeLens(dir_).status().message()),
              HasSubstr("missing tensor 'b_gate'"));
  WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"normalize_activations", "layer_norm"}},
              weights);
  EXPECT_EQ(ReadSaeLens(dir_).status().code(), absl::StatusCode::kUnimplemented);
  WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"architecture", "jumprelu"}}, weights);
  EXPECT_THAT(std::string(ReadSaeLens(dir_).status().message()),
              HasSubstr("missing tensor 'threshold'"));
}

// SAELens 6's gated encoder with apply_b_dec_to_input false reads x itself: gate x W_enc + b_gate,
// magnitude x (W_enc * exp(r_mag)) + b_mag. Read back, the folder's biases are shifted so that
// the same pre-activations come from x - b_dec.
TEST_F(SaeLensTest, GatedFolderWithoutDecoderBiasOnTheInputIsFoldedIntoTheSameFunction) {
  at::manual_seed(3);
  const at::Tensor W_enc = at::randn({8, 32}), W_dec = at::randn({32, 8}), b_dec = at::randn({8});
  const at::Tensor b_gate = at::randn({32}), b_mag = at::randn({32}), r_mag = at::randn({32});
  WriteFolder(dir_,
              {{"d_in", 8}, {"d_sae", 32}, {"architecture", "gated"},
               {"apply_b_dec_to_input", false}},
              {{"W_enc", W_enc}, {"W_dec", W_dec}, {"b_dec", b_dec}, {"b_gate", b_gate},
               {"b_mag", b_mag}, {"r_mag", r_mag}});
  auto back = ReadSaeLens(dir_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata.architecture, "gated");
  EXPECT_EQ(back->cfg["apply_b_dec_to_input"], true);
  const at::Tensor x = at::randn({5, 8});
  auto gate = [](const at::Tensor& in, const at::Tensor& W, const at::Tensor& b) {
    return at::addmm(b, in, W);
  };
  EXPECT_TRUE(at::allclose(gate(x - back->b_dec, back->W_enc, back->b_gate),
                           gate(x, W_enc, b_gate), 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(gate(x - back->b_dec, back->W_enc * back->r_mag.exp(), back->b_mag),
                           gate(x, W_enc * r_mag.exp(), b_mag), 1e-4, 1e-4));
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

// Found by fuzz/saelens_cfg_fuzz.cc: k 0 was accepted, and a k that is not an integer in
// activation_fn_kwargs threw nlohmann's type_error out of ReadSaeLens.
TEST_F(SaeLensTest, TopKNeedsAnIntegerKFromOneToDSae) {
  SaeLensSae sae = Example("topk");
  NamedTensors weights = {
      {"W_enc", sae.W_enc}, {"b_enc", sae.b_enc}, {"W_dec", sae.W_dec}, {"b_dec", sae.b_dec}};
  for (const nlohmann::json& k : {nlohmann::json(0), nlohmann::json(-3), nlohmann::json(33)}) {
    WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"architecture", "topk"}, {"k", k}}, weights);
    auto back = ReadSaeLens(dir_);
    EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument) << k;
    EXPECT_THAT(std::string(back.status().message()),
                HasSubstr("k " + k.dump() + " must be in [1, d_sae = 32]"));
  }
  WriteFolder(dir_,
              {{"d_in", 8},
               {"d_sae", 32},
               {"activation_fn_str", "topk"},
               {"activation_fn_kwargs", {{"k", "8"}}}},
              weights);
  EXPECT_THAT(std::string(ReadSaeLens(dir_).status().message()),
              HasSubstr("a topk SAE needs an integer \"k\""));
  WriteFolder(dir_, {{"d_in", 8}, {"d_sae", 32}, {"architecture", "topk"}, {"k", 32}}, weights);
  EXPECT_TRUE(ReadSaeLens(dir_).ok());
}

TEST_F(SaeLensTest, MissingFolderAndBadCfgAreClearErrors) {
  EXPECT_EQ(ReadSaeLens(dir_).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(MakeDirectories(dir_).ok());
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/cfg.json", R"({"d_in": 8})").ok());
  EXPECT_THAT(std::string(ReadSaeLens(dir_).status().message()), HasSubstr("\"d_sae\""));
}

}  // namespace
}  // namespace sae::io
