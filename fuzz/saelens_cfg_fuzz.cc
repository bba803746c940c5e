// A SAELens cfg.json of arbitrary text (core/io/saelens.h), read with fixed weights beside it: an
// SAE of d_in 4 and d_sae 8 with every tensor an architecture may need (W_enc, b_enc, W_dec,
// b_dec, threshold, log_threshold) and a sparsity file. Properties: ReadSaeLens never crashes (nor
// throws); an SAE it accepts has the weights cfg.json's d_in and d_sae imply and, for topk, a k in
// [1, d_sae]; and what it read, written with WriteSaeLens, reads back to the same weights and
// metadata.
#include <ATen/ATen.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/io/saelens.h"
#include "core/io/safetensors.h"
#include "fuzz/scratch_dir.h"

namespace {

using sae::fuzz::PropertyFailed;

constexpr int64_t kDIn = 4, kDSae = 8;

void AddF32(sae::io::SafetensorsWriter& writer, const std::string& name, std::vector<int64_t> shape,
            float first) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::vector<float> values(numel);
  for (int64_t i = 0; i < numel; ++i) values[i] = first + 0.25f * static_cast<float>(i % 7);
  auto bytes = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()),
                                         values.size() * sizeof(float));
  if (!writer.Add(name, sae::io::DType::kF32, std::move(shape), bytes).ok()) PropertyFailed(name);
}

// The folder holding the fixed weights; cfg.json is rewritten for every input.
const std::string& SaeFolder() {
  static const std::string* folder = [] {
    auto* dir = new std::string(sae::fuzz::ScratchDir() + "/sae");
    std::filesystem::create_directories(*dir);
    sae::io::SafetensorsWriter weights;
    AddF32(weights, "W_enc", {kDIn, kDSae}, -1.0f);
    AddF32(weights, "b_enc", {kDSae}, 0.5f);
    AddF32(weights, "W_dec", {kDSae, kDIn}, 0.75f);
    AddF32(weights, "b_dec", {kDIn}, -0.5f);
    AddF32(weights, "threshold", {kDSae}, 0.125f);
    AddF32(weights, "log_threshold", {kDSae}, -2.0f);
    sae::io::SafetensorsWriter sparsity;
    AddF32(sparsity, "sparsity", {kDSae}, -3.0f);
    if (!weights.Write(*dir + "/sae_weights.safetensors").ok() ||
        !sparsity.Write(*dir + "/sparsity.safetensors").ok()) {
      PropertyFailed("cannot write the weights");
    }
    return dir;
  }();
  return *folder;
}

bool SameTensor(const at::Tensor& a, const at::Tensor& b) {
  return a.defined() == b.defined() && (!a.defined() || at::equal(a, b));
}

void CheckRoundTrip(const sae::io::SaeLensSae& read) {
  sae::io::SaeLensSae fresh;
  fresh.W_enc = read.W_enc;
  fresh.b_enc = read.b_enc;
  fresh.W_dec = read.W_dec;
  fresh.b_dec = read.b_dec;
  fresh.threshold = read.threshold;
  fresh.sparsity = read.sparsity;
  fresh.metadata = read.metadata;
  fresh.cfg = nlohmann::json::object();
  const std::string dir = sae::fuzz::ScratchDir() + "/written";
  absl::Status written = sae::io::WriteSaeLens(dir, fresh);
  if (!written.ok()) PropertyFailed("WriteSaeLens refuses a read SAE: " + written.ToString());
  auto again = sae::io::ReadSaeLens(dir);
  if (!again.ok())
    PropertyFailed("ReadSaeLens refuses a written SAE: " + again.status().ToString());
  const auto& m = read.metadata;
  const auto& n = again->metadata;
  if (!SameTensor(read.W_enc, again->W_enc) || !SameTensor(read.b_enc, again->b_enc) ||
      !SameTensor(read.W_dec, again->W_dec) || !SameTensor(read.b_dec, again->b_dec) ||
      !SameTensor(read.threshold, again->threshold)) {
    PropertyFailed("weights differ after WriteSaeLens and ReadSaeLens");
  }
  if (m.architecture != n.architecture || m.k != n.k || m.model_name != n.model_name ||
      m.hook_name != n.hook_name || m.hook_layer != n.hook_layer ||
      m.hook_head_index != n.hook_head_index || m.context_size != n.context_size ||
      m.prepend_bos != n.prepend_bos || m.dataset_path != n.dataset_path ||
      m.processing != n.processing) {
    PropertyFailed("metadata differs after WriteSaeLens and ReadSaeLens:\n" +
                   sae::io::SaeLensConfig(fresh).dump(2));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = SaeFolder();
  sae::fuzz::WriteScratchFile("sae/cfg.json", sae::fuzz::AsBytes(data, size));
  auto sae = sae::io::ReadSaeLens(dir);
  if (!sae.ok()) return 0;
  if (sae->W_enc.sizes() != at::IntArrayRef({kDIn, kDSae}) ||
      sae->W_dec.sizes() != at::IntArrayRef({kDSae, kDIn})) {
    PropertyFailed("accepted weights of the wrong shape");
  }
  if (sae->metadata.architecture == "topk" && (sae->metadata.k < 1 || sae->metadata.k > kDSae)) {
    PropertyFailed(
        absl::StrCat("accepted a topk SAE with k ", sae->metadata.k, " of d_sae ", kDSae));
  }
  CheckRoundTrip(*sae);
  return 0;
}
