// Controller: checkpoint uploads (staged, checked, committed with retention) and queries.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/util/status.h"
#include "services/controller/controller.h"
#include "services/controller/controller_internal.h"

namespace sae::controller {
namespace {

using client::IsFinalState;
using client::RunStateName;
using internal::HumanBytes;
using internal::RandomSuffix;
using internal::RunWorkerOf;
using internal::UnixMillis;
using internal::WorkerLabel;

}  // namespace

absl::StatusOr<std::vector<v1::CheckpointManifest>> Controller::ListCheckpoints(
    const std::string& run_id) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (FindRun(run_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
    }
  }
  return store_->ListCheckpoints(run_id);
}

absl::StatusOr<v1::CheckpointManifest> Controller::FindCheckpoint(
    const std::string& run_id, std::optional<int64_t> step) const {
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> manifests, ListCheckpoints(run_id));
  if (manifests.empty()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no checkpoint"));
  }
  if (!step) return manifests.back();
  for (const v1::CheckpointManifest& manifest : manifests) {
    if (manifest.step() == *step) return manifest;
  }
  return absl::NotFoundError(absl::StrCat("run ", run_id, " has no checkpoint at step ", *step,
                                          " (saectl checkpoints ", run_id, " lists them)"));
}

absl::StatusOr<v1::CheckpointManifest> Controller::FindFeatures(const std::string& run_id) const {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (FindRun(run_id) == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " not found"));
    }
  }
  return store_->FindFeatures(run_id);
}

absl::StatusOr<std::string> Controller::ReadChunk(const v1::CheckpointManifest& manifest,
                                                  int32_t index) const {
  SAE_ASSIGN_OR_RETURN(std::string data, store_->ReadChunk(manifest, index));
  // RocksDB's checksums cover what it wrote; the chunk's SHA-256, taken when it arrived, also
  // covers what happened since (a rewritten value, a bug): what does not match is never sent.
  if (index >= 0 && index < manifest.chunks_size() && !manifest.chunks(index).sha256().empty() &&
      rpc::Sha256::Of(data) != manifest.chunks(index).sha256()) {
    return absl::DataLossError(absl::StrCat(
        "chunk ", index, " of the checkpoint at step ", manifest.step(), " of run ",
        manifest.run_id(),
        " does not match the SHA-256 recorded when it was uploaded: the "
        "controller's data dir is damaged; restore it from a backup, or use an earlier "
        "checkpoint (saectl checkpoints ",
        manifest.run_id(), " lists them)"));
  }
  return data;
}

// ---- Checkpoint uploads ----

absl::StatusOr<std::unique_ptr<Controller::CheckpointUpload>> Controller::BeginUpload(
    const v1::UploadHeader& header) {
  if (header.features()) {
    if (header.step() < 0 || header.tokens() < 0) {
      return absl::InvalidArgumentError("UploadCheckpoint: negative step or tokens");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (FindRun(header.run_id()) == nullptr) {
      return absl::NotFoundError(absl::StrCat("run ", header.run_id(), " not found"));
    }
  } else {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = workers_.find(header.worker_id());
    if (it == workers_.end()) {
      return absl::NotFoundError(absl::StrCat("unknown worker ", header.worker_id()));
    }
    const WorkerEntry& worker = it->second;
    const RunEntry* entry = FindRun(header.run_id());
    if (entry == nullptr || worker.info.run_id() != header.run_id() ||
        worker.info.generation() != header.generation() ||
        entry->run.state() != v1::RUN_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", header.worker_id(), " is not assigned to run ", header.run_id(),
                       " generation ", header.generation(), " any more"));
    }
    if (worker.info.role() != v1::WORKER_ROLE_TRAINER) {
      return absl::PermissionDeniedError("only trainers upload checkpoints");
    }
    if (header.step() < 0 || header.tokens() < 0) {
      return absl::InvalidArgumentError("UploadCheckpoint: negative step or tokens");
    }
  }
  SAE_ASSIGN_OR_RETURN(std::unique_ptr<RunStore::Upload> staged,
                       store_->BeginUpload(header.run_id(), header.step()));
  return std::unique_ptr<CheckpointUpload>(new CheckpointUpload(header, std::move(staged), Now()));
}

absl::Status Controller::AddChunk(CheckpointUpload& upload, const v1::CheckpointChunk& chunk) {
  if (chunk.index() != upload.chunk_count()) {
    return absl::InvalidArgumentError(absl::StrCat("UploadCheckpoint: chunk ", chunk.index(),
                                                   " arrived where chunk ", upload.chunk_count(),
                                                   " was expected"));
  }
  if (static_cast<int64_t>(chunk.data().size()) > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("UploadCheckpoint: chunk ", chunk.index(), " is larger than 16 MiB"));
  }
  std::string digest = rpc::Sha256::Of(chunk.data());
  if (!chunk.sha256().empty() && chunk.sha256() != digest) {
    return absl::DataLossError(
        absl::StrCat("UploadCheckpoint: chunk ", chunk.index(), " does not match its SHA-256"));
  }
  SAE_RETURN_IF_ERROR(upload.staged_->AddChunk(chunk.data()));
  upload.whole_.Update(chunk.data());
  v1::ChunkDigest& entry = upload.digests_.emplace_back();
  entry.set_size(static_cast<int64_t>(chunk.data().size()));
  entry.set_sha256(std::move(digest));
  upload.bytes_ += static_cast<int64_t>(chunk.data().size());
  metrics_->RecordReceivedChunk(static_cast<int64_t>(chunk.data().size()));
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckpointManifest> Controller::CommitUpload(CheckpointUpload& upload,
                                                                const v1::UploadCommit& commit) {
  if (commit.chunk_count() != upload.chunk_count() || commit.total_bytes() != upload.bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("UploadCheckpoint: the commit announces ", commit.chunk_count(),
                     " chunks and ", commit.total_bytes(), " bytes; ", upload.chunk_count(),
                     " chunks and ", upload.bytes_, " bytes arrived"));
  }
  if (commit.sha256() != upload.whole_.Finish()) {
    return absl::DataLossError("UploadCheckpoint: the archive does not match its SHA-256");
  }
  const v1::UploadHeader& header = upload.header_;
  v1::CheckpointManifest manifest;
  manifest.set_tokens(header.tokens());
  manifest.set_generation(header.generation());
  manifest.set_final(header.final());
  *manifest.mutable_saes() = header.saes();
  manifest.set_total_bytes(upload.bytes_);
  manifest.set_chunk_count(upload.chunk_count());
  for (const v1::ChunkDigest& digest : upload.digests_) *manifest.add_chunks() = digest;
  manifest.set_sha256(commit.sha256());
  manifest.set_created_unix_ms(UnixMillis(Now()));
  if (header.features()) return CommitFeatures(upload, std::move(manifest));

  std::lock_guard<std::mutex> lock(mutex_);
  RunEntry* entry = FindRun(header.run_id());
  if (entry == nullptr || entry->run.generation() != header.generation() ||
      entry->run.state() != v1::RUN_STATE_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", header.run_id(), " moved on from generation ", header.generation(),
                     " during the upload; the checkpoint at step ", header.step(), " is dropped"));
  }
  v1::Run updated = entry->run;
  std::vector<v1::RunEvent> events;
  updated.set_latest_checkpoint_step(header.step());
  v1::RunEvent& event = AddEvent(
      updated, v1::RunEvent::TYPE_CHECKPOINT_COMMITTED,
      absl::StrCat(header.final() ? "final SAE" : "checkpoint", " at step ", header.step(), " (",
                   header.tokens(), " tokens, ", HumanBytes(upload.bytes_), ") committed"),
      events);
  event.set_step(header.step());
  event.set_tokens(header.tokens());
  event.set_bytes(upload.bytes_);
  // The bytes kept after retention: the new checkpoint plus the newest retention - 1 others.
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> before,
                       store_->ListCheckpoints(header.run_id()));
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> deleted,
                       store_->CommitUpload(*upload.staged_, manifest, updated, events,
                                            options_.checkpoint_retention));
  int64_t stored = upload.bytes_;
  for (const v1::CheckpointManifest& old : before) {
    bool gone = std::any_of(deleted.begin(), deleted.end(), [&](const auto& d) {
      return d.step() == old.step() && d.upload_id() == old.upload_id();
    });
    if (!gone) stored += old.total_bytes();
  }
  updated.set_checkpoint_bytes(stored);
  entry->run = std::move(updated);
  events_changed_.notify_all();
  // The byte count is the one change since the commit's batch; should this write fail, the
  // next one carries it.
  (void)Save(*entry, {}, Durability::kBuffered);
  metrics_->RecordCheckpoint(header.run_id(), upload.bytes_,
                             absl::ToDoubleSeconds(Now() - upload.started_), stored,
                             absl::ToDoubleSeconds(Now() - absl::UnixEpoch()));
  manifest.set_run_id(header.run_id());
  manifest.set_step(header.step());
  manifest.set_upload_id(upload.staged_->upload_id());
  return manifest;
}

absl::StatusOr<v1::CheckpointManifest> Controller::CommitFeatures(CheckpointUpload& upload,
                                                                  v1::CheckpointManifest manifest) {
  const v1::UploadHeader& header = upload.header_;
  std::lock_guard<std::mutex> lock(mutex_);
  RunEntry* entry = FindRun(header.run_id());
  if (entry == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", header.run_id(), " was deleted during the features upload"));
  }
  v1::Run updated = entry->run;
  std::vector<v1::RunEvent> events;
  updated.set_features_step(header.step());
  updated.set_features_bytes(upload.bytes_);
  v1::RunEvent& event = AddEvent(updated, v1::RunEvent::TYPE_FEATURES_COMMITTED,
                                 absl::StrCat("feature dashboards of the SAE at step ",
                                              header.step(), " (", HumanBytes(upload.bytes_),
                                              ") stored"),
                                 events);
  event.set_step(header.step());
  event.set_tokens(header.tokens());
  event.set_bytes(upload.bytes_);
  SAE_RETURN_IF_ERROR(store_->CommitFeatures(*upload.staged_, manifest, updated, events));
  entry->run = std::move(updated);
  events_changed_.notify_all();
  manifest.set_run_id(header.run_id());
  manifest.set_step(header.step());
  manifest.set_upload_id(upload.staged_->upload_id());
  return manifest;
}

}  // namespace sae::controller
