// saectl features RUN: the feature dashboards of a cluster run's SAE, computed here with the
// run's model and dataset and stored with the run in the controller (docs/features.md, "On a
// cluster"), so that `saectl export RUN` and the web console have them.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/features/feature_output.h"
#include "core/util/status.h"
#include "tools/saectl/features_command.h"
#include "tools/saectl/format.h"
#include "tools/saectl/sae_inputs.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;

// A fresh folder under $TMPDIR, removed with its contents when this goes away.
class WorkFolder {
 public:
  static absl::StatusOr<WorkFolder> Create() {
    const char* tmpdir = ::getenv("TMPDIR");
    std::string pattern = absl::StrCat(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
                                       "/saectl-features-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a folder like ", pattern));
    }
    return WorkFolder(pattern);
  }
  WorkFolder(WorkFolder&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  WorkFolder(const WorkFolder&) = delete;
  WorkFolder& operator=(const WorkFolder&) = delete;
  ~WorkFolder() {
    std::error_code error;
    if (!path_.empty()) fs::remove_all(path_, error);
  }
  const std::string& path() const { return path_; }

 private:
  explicit WorkFolder(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Copies the output folder `from` to `to` (replacing a previous output of saectl features there:
// CheckOutputFolder said so), through `to`.tmp-PID so that `to` is whole or untouched.
absl::Status KeepCopy(const std::string& from, const std::string& to) {
  std::error_code error;
  const std::string tmp = absl::StrCat(to, ".tmp-", ::getpid());
  fs::remove_all(tmp, error);
  fs::copy(from, tmp, fs::copy_options::recursive, error);
  if (!error) {
    fs::remove_all(to, error);
    fs::rename(tmp, to, error);
  }
  if (error) {
    fs::remove_all(tmp, error);
    return absl::InternalError(absl::StrCat("cannot write the copy into --out ", to));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunFeaturesOfRun(const FeaturesFlags& f) {
  const std::string& run_id = f.sae_dir;
  if (!f.out.empty()) SAE_RETURN_IF_ERROR(features::CheckOutputFolder(f.out));
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  absl::StatusOr<v1::Run> run = client->GetRun(run_id);
  if (absl::IsNotFound(run.status())) {
    return absl::NotFoundError(absl::StrCat(
        run_id, " is neither a folder nor a run of the controller at ", f.server.server,
        ": give an SAE folder, or a run id (saectl get runs)"));
  }
  if (!run.ok()) {
    return absl::Status(run.status().code(),
                        absl::StrCat(run_id, " is not a folder, and asking the controller about a "
                                     "run of that id failed: ", run.status().message()));
  }
  std::optional<int64_t> step;
  if (f.step >= 0) {
    step = f.step;
  } else if (run->has_final_checkpoint_step()) {
    step = run->final_checkpoint_step();
  } else if (!run->has_latest_checkpoint_step()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "run ", run_id, " has no checkpoint yet: wait for its first (saectl checkpoints ", run_id,
        ")"));
  }

  // The run's model, tokenizer and dataset, as its config names them; flags override them.
  SAE_ASSIGN_OR_RETURN(config::RunConfig config,
                       config::ParseRunConfig(run->config_yaml(), absl::StrCat("run ", run_id)));
  FeaturesFlags local = f;
  if (local.model.empty()) local.model = config.model_path.value_or("");
  if (local.dataset.empty()) local.dataset = config.dataset_path.value_or("");
  if (local.tokenizer.empty()) local.tokenizer = config.tokenizer_path.value_or("");
  if (local.model.empty() || local.dataset.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run ", run_id, "'s config names no ", local.model.empty() ? "model_path" : "dataset_path",
        ": give ", local.model.empty() ? "--model" : "--dataset"));
  }
  // The run's paths must be on this machine (a glob dataset is checked when it is opened).
  const std::pair<const char*, std::string> paths[] = {{"model", local.model},
                                                       {"dataset", local.dataset}};
  for (const auto& [what, path] : paths) {
    if (path.find('*') == std::string::npos && !fs::exists(path)) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, "'s ", what, " ", path,
                                              " is not on this machine: give --", what,
                                              " with a copy of it"));
    }
  }

  SAE_ASSIGN_OR_RETURN(WorkFolder work, WorkFolder::Create());
  const std::string download = work.path() + "/checkpoint";
  SAE_ASSIGN_OR_RETURN(v1::CheckpointManifest manifest,
                       client->DownloadCheckpoint(run_id, step, download));
  std::optional<std::string> sae_dir = FindSaeLensFolder(download);
  if (!sae_dir) {
    return absl::NotFoundError(absl::StrCat("the checkpoint at step ", manifest.step(), " of run ",
                                            run_id, " holds no SAELens folder"));
  }
  local.sae_dir = *sae_dir;
  local.out = work.path() + "/features";
  local.sae_label = absl::StrCat("run ", run_id, ", ",
                                 manifest.final() ? "final SAE" : "checkpoint", " at step ",
                                 manifest.step());
  SAE_RETURN_IF_ERROR(RunFeatures(local));

  v1::UploadHeader header;
  header.set_run_id(run_id);
  header.set_step(manifest.step());
  header.set_tokens(manifest.tokens());
  header.set_features(true);
  SAE_ASSIGN_OR_RETURN(v1::CheckpointManifest stored,
                       client->UploadCheckpoint(header, local.out));
  std::printf("stored the feature dashboards of run %s (SAE at step %lld, %s) in the controller: "
              "saectl export %s brings them along; the console shows them at #/features/%s\n",
              run_id.c_str(), static_cast<long long>(stored.step()),
              HumanBytes(stored.total_bytes()).c_str(), run_id.c_str(), run_id.c_str());
  if (!f.out.empty()) {
    SAE_RETURN_IF_ERROR(KeepCopy(local.out, f.out));
    std::printf("and kept a copy in %s (open %s/index.html)\n", f.out.c_str(), f.out.c_str());
  }
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace sae::saectl
