// saectl export RUN: a run's SAE (final, or a checkpoint) from the controller, in SAELens
// format; a run of many SAEs exports one (--sae) or each into a folder of its own.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/saelens.h"
#include "core/util/status.h"
#include "tools/saectl/command.h"
#include "tools/saectl/sae_inputs.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {
namespace {

namespace fs = std::filesystem;

struct ExportFlags {
  ServerFlags server;
  std::string run_id;
  std::string out;
  int64_t checkpoint = -1;
  bool all = false;
  std::string sae;  // a run of many SAEs: the one to export ("" : every one)
};

// The SAEs of a run of many (manifest.saes, each under saes/<name>/ of `download`): `only` into
// `out`, or every one into out/<name>/.
absl::Status ExportSaesOfRun(const ExportFlags& f, const v1::CheckpointManifest& manifest,
                             const fs::path& download, const fs::path& out) {
  std::error_code error;
  std::vector<std::string> names;
  for (const std::string& name : manifest.saes()) {
    if (f.sae.empty() || name == f.sae) names.push_back(name);
  }
  if (names.empty()) {
    return absl::NotFoundError(absl::StrCat("run ", f.run_id, " has no SAE named \"", f.sae,
                                            "\"; its SAEs: ",
                                            absl::StrJoin(manifest.saes(), ", ")));
  }
  const std::string what = manifest.final() ? "final SAE" : "checkpoint";
  std::vector<std::pair<std::string, fs::path>> moves;  // name -> its SAELens folder
  for (const std::string& name : names) {
    std::optional<std::string> found = FindSaeLensFolder((download / "saes" / name).string());
    if (!found) {
      return absl::NotFoundError(absl::StrCat("the ", what, " at step ", manifest.step(),
                                              " of run ", f.run_id,
                                              " holds no SAELens folder for SAE ", name,
                                              "; --all exports it whole"));
    }
    moves.emplace_back(name, *found);
  }
  fs::remove(out, error);  // an empty folder, if any
  for (const auto& [name, source] : moves) {
    const fs::path to = f.sae.empty() ? out / name : out;
    fs::create_directories(to.parent_path(), error);
    fs::rename(source, to, error);
    if (error || !fs::exists(to)) {
      return absl::InternalError(absl::StrCat("cannot move the download of SAE ", name, " into ",
                                              to.string()));
    }
    SAE_ASSIGN_OR_RETURN(io::SaeLensSae sae, io::ReadSaeLens(to.string()));
    std::printf(
        "exported the %s %s at step %lld of run %s to %s (SAELens format: d_in %lld, d_sae "
        "%lld, %s)\n",
        what.c_str(), name.c_str(), static_cast<long long>(manifest.step()), f.run_id.c_str(),
        to.c_str(), static_cast<long long>(sae.W_enc.size(0)),
        static_cast<long long>(sae.W_enc.size(1)), sae.metadata.architecture.c_str());
  }
  return absl::OkStatus();
}

absl::Status RunExport(const ExportFlags& f) {
  std::error_code error;
  if (fs::exists(f.out) && !fs::is_empty(f.out, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("--out ", f.out, " exists and is not empty; choose a new folder"));
  }
  SAE_ASSIGN_OR_RETURN(auto client, ConnectController(f.server));
  SAE_ASSIGN_OR_RETURN(v1::Run run, client->GetRun(f.run_id));
  std::optional<int64_t> step;
  if (f.checkpoint >= 0) {
    step = f.checkpoint;
  } else if (run.has_final_checkpoint_step()) {
    step = run.final_checkpoint_step();
  } else if (!run.has_latest_checkpoint_step()) {
    return absl::NotFoundError(absl::StrCat("run ", f.run_id, " has no checkpoint yet"));
  }
  fs::path out = fs::absolute(f.out);
  fs::path download = out.string() + absl::StrCat(".download-", ::getpid());
  fs::remove_all(download, error);
  absl::StatusOr<v1::CheckpointManifest> manifest =
      client->DownloadCheckpoint(f.run_id, step, download.string());
  if (!manifest.ok()) {
    fs::remove_all(download, error);
    return manifest.status();
  }
  if (manifest->saes_size() > 0 && !f.all) {
    absl::Status exported = ExportSaesOfRun(f, *manifest, download, out);
    fs::remove_all(download, error);
    return exported;
  }
  if (!f.sae.empty() && manifest->saes_size() == 0) {
    fs::remove_all(download, error);
    return absl::InvalidArgumentError(
        absl::StrCat("run ", f.run_id, " trains one SAE; leave out --sae ", f.sae));
  }
  fs::path source = download;
  if (!f.all) {
    std::optional<std::string> found = FindSaeLensFolder(download.string());
    if (!found) {
      fs::remove_all(download, error);
      return absl::NotFoundError(absl::StrCat(
          "the checkpoint at step ", manifest->step(), " of run ", f.run_id,
          " holds no SAELens folder (cfg.json + sae_weights.safetensors); --all exports it whole"));
    }
    source = *found;
  }
  // The run's feature dashboards come along when they describe this SAE (saectl features RUN).
  const bool with_features = run.has_features_step() && run.features_step() == manifest->step();
  fs::path features = out.string() + absl::StrCat(".features-", ::getpid());
  if (with_features) {
    fs::remove_all(features, error);
    absl::StatusOr<v1::CheckpointManifest> got =
        client->DownloadFeatures(f.run_id, features.string());
    if (!got.ok()) {
      fs::remove_all(download, error);
      fs::remove_all(features, error);
      return got.status();
    }
  }
  fs::remove(out, error);  // an empty folder, if any
  fs::create_directories(out.parent_path(), error);
  fs::rename(source, out, error);
  fs::remove_all(download, error);
  if (with_features) {
    fs::rename(features, out / "features", error);
    fs::remove_all(features, error);
  }
  if (!fs::exists(out) || (with_features && !fs::exists(out / "features"))) {
    return absl::InternalError(absl::StrCat("cannot move the download into ", out.string()));
  }
  if (with_features) {
    std::printf("with the run's feature dashboards in %s/features (open index.html)\n",
                out.c_str());
  } else if (run.has_features_step()) {
    std::printf("(the run's feature dashboards describe the SAE at step %lld, not this one: "
                "export --checkpoint %lld brings them along)\n",
                static_cast<long long>(run.features_step()),
                static_cast<long long>(run.features_step()));
  }
  std::string what = manifest->final() ? "final SAE" : "checkpoint";
  if (f.all) {
    std::printf("exported the %s at step %lld of run %s to %s\n", what.c_str(),
                static_cast<long long>(manifest->step()), f.run_id.c_str(), out.c_str());
    return absl::OkStatus();
  }
  SAE_ASSIGN_OR_RETURN(io::SaeLensSae sae, io::ReadSaeLens(out.string()));
  std::printf(
      "exported the %s at step %lld of run %s to %s (SAELens format: d_in %lld, d_sae "
      "%lld, %s)\n",
      what.c_str(), static_cast<long long>(manifest->step()), f.run_id.c_str(), out.c_str(),
      static_cast<long long>(sae.W_enc.size(0)), static_cast<long long>(sae.W_enc.size(1)),
      sae.metadata.architecture.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterRunExportCommand(CLI::App& app) {
  auto export_flags = std::make_shared<ExportFlags>();
  CLI::App* export_command = app.add_subcommand(
      "export", "Download a run's SAE (final, or --checkpoint STEP) in SAELens format");
  export_command->add_option("RUN", export_flags->run_id, "Run id")->required();
  export_command->add_option("--out", export_flags->out, "Folder to write (new or empty)")
      ->required();
  export_command->add_option("--checkpoint", export_flags->checkpoint,
                             "Step of the checkpoint (default: the final SAE, else the newest)");
  export_command->add_option("--sae", export_flags->sae,
                             "A run of many SAEs: the SAE to export (its name, as `describe run` "
                             "lists it); without it every SAE goes to OUT/<name>");
  export_command->add_flag("--all", export_flags->all,
                           "Write the whole checkpoint (trainer state too), not only the SAE");
  AddServerFlags(export_command, &export_flags->server);
  export_command->callback(
      [export_flags] { RunCommand([&] { return RunExport(*export_flags); }); });
}

}  // namespace sae::saectl
