#include "core/training/checkpoint.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/io/saelens.h"
#include "core/sae/saelens_parameters.h"
#include "core/training/run_assets.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::training {

namespace {

// The SHA-256 of a file, in lower-case hex, read in pieces (checkpoints reach gigabytes).
absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (file == nullptr) return ErrnoStatus("cannot open", path, errno);
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (md == nullptr || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL cannot start a SHA-256 digest");
  }
  std::vector<char> buffer(1 << 20);
  while (true) {
    const size_t n = std::fread(buffer.data(), 1, buffer.size(), file.get());
    if (n > 0) EVP_DigestUpdate(md.get(), buffer.data(), n);
    if (n < buffer.size()) {
      if (std::ferror(file.get())) return ErrnoStatus("cannot read", path, errno);
      break;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(md.get(), digest, &length);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
}

// Every regular file under `dir` but the checksum list, by relative path, sorted.
std::vector<std::string> FilesUnder(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    std::string relative = std::filesystem::relative(it->path(), dir).string();
    if (relative != kChecksumsFile) files.push_back(std::move(relative));
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Writes DIR/checksums.sha256 over every file of the checkpoint folder (sha256sum's format).
absl::Status WriteChecksums(const std::string& dir) {
  std::string text;
  for (const std::string& file : FilesUnder(dir)) {
    SAE_ASSIGN_OR_RETURN(std::string digest, Sha256OfFile(dir + "/" + file));
    absl::StrAppend(&text, digest, "  ", file, "\n");
  }
  return WriteFileAtomically(dir + "/" + kChecksumsFile, text);
}

// A failed write of a checkpoint, with what to do when the disk is full.
absl::Status CheckpointWriteError(const absl::Status& status, const std::string& dir) {
  const std::string parent = std::filesystem::path(dir).parent_path().string();
  if (absl::IsResourceExhausted(status)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "checkpoint ", dir, " was not written: ", status.message(), ". The file system of ", parent,
        " is full: free space there, or point checkpoint_path (--output) at a larger "
        "disk; the checkpoints written before are intact and nothing of this one is left"));
  }
  return absl::Status(status.code(),
                      absl::StrCat("checkpoint ", dir, " was not written: ", status.message()));
}

}  // namespace

std::string CheckpointName(int64_t step) { return absl::StrFormat("step_%08d", step); }

absl::Status VerifyCheckpointChecksums(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadFile(dir + "/" + kChecksumsFile);
  if (absl::IsNotFound(text.status())) {
    spdlog::warn(
        "checkpoint {} has no {} (written by an older version): its files are loaded "
        "unchecked",
        dir, kChecksumsFile);
    return absl::OkStatus();
  }
  SAE_RETURN_IF_ERROR(text.status());
  int checked = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    const size_t gap = line.find("  ");
    if (gap != 64 || line.size() <= 66) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", kChecksumsFile,
                                              " is damaged (line '", line, "')"));
    }
    const std::string file(line.substr(66));
    if (file.find("..") != std::string::npos || file.front() == '/') {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": ", kChecksumsFile,
                                              " names a file outside the checkpoint: ", file));
    }
    absl::StatusOr<std::string> digest = Sha256OfFile(dir + "/" + file);
    if (absl::IsNotFound(digest.status())) {
      return absl::DataLossError(absl::StrCat("checkpoint ", dir, " is incomplete: ", file,
                                              " is missing; resume from another checkpoint"));
    }
    SAE_RETURN_IF_ERROR(digest.status());
    if (*digest != line.substr(0, 64)) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", dir, " is damaged: ", file, " does not match its SHA-256 in ",
                       kChecksumsFile,
                       "; it is not loaded. Resume from another checkpoint (an earlier "
                       "step folder, or the controller's copy)"));
    }
    ++checked;
  }
  if (checked == 0) {
    return absl::DataLossError(
        absl::StrCat("checkpoint ", dir, ": ", kChecksumsFile, " lists no file"));
  }
  return absl::OkStatus();
}

absl::Status ExportSae(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                       const std::string& dir) {
  io::SaeLensSae sae;
  sae.metadata = SaeLensMetadataFor(config);
  // expected_average_only_in's factor is folded into the weights; constant_norm_rescale stays
  // in cfg.json, applied at inference (SAELens 6 does both the same way).
  sparse::ExportTensors(trainer.InferenceParameters(), config.architecture, sae);
  sae.metadata.normalize_activations =
      std::string(config::ToString(trainer.InferenceOptions().normalize_activations));
  sae.sparsity = at::log10(trainer.FeatureSparsity() + 1e-10);
  sae.cfg = {{"training_tokens", trainer.tokens_seen()},
             {"training_steps", trainer.step()},
             {"l1_coefficient", config.l1_coefficient},
             {"lr", config.lr}};
  if (trainer.activation_scale() > 0) {
    sae.cfg["normalize_activations_trained"] = "expected_average_only_in";
    sae.cfg["activation_norm_scaling_factor"] = trainer.activation_scale();
  }
  // The training keys of the SAELens 6 architectures (the folder itself is a jumprelu or gated
  // SAE for inference; batchtopk and matryoshka_batchtopk export as jumprelu, as SAELens does).
  switch (config.architecture) {
    case config::Architecture::kBatchTopK:
    case config::Architecture::kMatryoshkaBatchTopK:
      sae.cfg["trained_architecture"] = std::string(config::ToString(config.architecture));
      sae.cfg["k"] = config.k.value_or(0);
      sae.cfg["topk_threshold_lr"] = config.topk_threshold_lr;
      sae.cfg["aux_k_coefficient"] = config.aux_k_coefficient;
      if (!config.matryoshka_widths.empty()) {
        sae.cfg["matryoshka_widths"] = trainer.options().sae.matryoshka_widths;
      }
      break;
    case config::Architecture::kJumpReLU:
      sae.cfg["jumprelu_init_threshold"] = config.jumprelu_init_threshold;
      sae.cfg["jumprelu_bandwidth"] = config.jumprelu_bandwidth;
      sae.cfg["jumprelu_sparsity_loss_mode"] =
          std::string(config::ToString(config.jumprelu_sparsity_loss_mode));
      sae.cfg["jumprelu_tanh_scale"] = config.jumprelu_tanh_scale;
      if (config.target_l0) sae.cfg["target_l0"] = *config.target_l0;
      sae.cfg["jumprelu_ste_to_input"] = config.jumprelu_ste_to_input;
      sae.cfg["l0_coefficient"] = config.l0_coefficient;
      sae.cfg["l0_warm_up_steps"] = config.l0_warm_up_steps;
      sae.cfg["pre_act_loss_coefficient"] =
          config.pre_act_loss_coefficient ? nlohmann::json(*config.pre_act_loss_coefficient)
                                          : nlohmann::json();
      break;
    default:
      break;
  }
  return io::WriteSaeLens(dir, sae);
}

absl::Status WriteCheckpoint(const sparse::SaeTrainer& trainer, const config::RunConfig& config,
                             const std::map<std::string, std::string>& extra,
                             const std::string& dir) {
  const std::string partial = dir + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(partial, ec);
  absl::Status written = [&]() -> absl::Status {
    SAE_RETURN_IF_ERROR(MakeDirectories(partial));
    SAE_RETURN_IF_ERROR(trainer.SaveState(partial, extra));
    SAE_RETURN_IF_ERROR(ExportSae(trainer, config, partial + "/sae"));
    SAE_RETURN_IF_ERROR(WriteFileAtomically(partial + "/run.yaml", config::ToYaml(config)));
    return WriteChecksums(partial);
  }();
  if (!written.ok()) {
    // Nothing of a failed checkpoint stays: it would take the space a retry needs.
    std::filesystem::remove_all(partial, ec);
    return CheckpointWriteError(written, dir);
  }
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(partial, dir, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove_all(partial, ignored);
    return absl::InternalError(
        absl::StrCat("cannot move checkpoint into ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ReadCheckpoint(const std::string& dir,
                                                                  sparse::SaeTrainer& trainer) {
  if (!std::filesystem::exists(dir + "/state.json")) {
    return absl::NotFoundError(absl::StrCat(dir, " is not a checkpoint (no state.json)"));
  }
  SAE_RETURN_IF_ERROR(VerifyCheckpointChecksums(dir));
  return trainer.LoadState(dir);
}

}  // namespace sae::training
