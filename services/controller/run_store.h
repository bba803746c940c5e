// The controller's durable state: runs, their events and their checkpoints, in one RocksDB.
//
// Column families and keys (run ids never contain '/'; integers are big-endian, so keys sort by
// number):
//   default    "next_upload_id"                          -> u64
//              "secret/" name                            -> a secret of the controller's
//                                                           (LoadOrStoreSecret)
//   runs       run_id                                    -> v1::Run
//   events     run_id "/" u64 sequence                   -> v1::RunEvent
//   manifests  run_id "/" u64 step                       -> v1::CheckpointManifest
//   blobs      run_id "/" u64 step u64 upload_id u32 chunk -> the chunk's bytes (integrated BlobDB)
//   staging    u64 upload_id                             -> the blob key prefix of that upload
//   history    run_id "/" u64 step                       -> v1::ProgressPoint (the console's
//                                                           downsampled progress series)
//   features   run_id                                    -> v1::CheckpointManifest of the run's
//                                                           feature dashboards (`saectl features
//                                                           RUN`); chunks in blobs, as a
//                                                           checkpoint's
//
// A checkpoint is uploaded into the blobs family under its own upload id while a staging record
// marks the upload as in progress. Committing it is one synced WriteBatch that writes the
// manifest (what makes the chunks reachable), deletes the staging record, deletes the checkpoints
// beyond the retention count, and writes the run record and its events. An upload that never
// commits (the client went away, the controller was killed) leaves only a staging record and
// unreachable chunks: Upload's destructor, or the next Open, deletes both. So a checkpoint is
// visible with all its chunks, or not at all.
//
// Thread safety: all methods are thread-safe. An Upload is used by one thread at a time.
#ifndef SAE_SERVICES_CONTROLLER_RUN_STORE_H_
#define SAE_SERVICES_CONTROLLER_RUN_STORE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "sae/v1/controller.pb.h"
#include "sae/v1/history.pb.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Status;
}  // namespace rocksdb

namespace sae::controller {

struct RunStoreOptions {
  // Chunks at least this large go to blob files rather than SST files. Default 4 KiB.
  uint64_t min_blob_size = 4096;
};

// Whether a write must be on disk when the call returns (an fsync of the log) or may be lost
// with the last moments before a machine crash (a process crash loses nothing either way).
enum class Durability { kSynced, kBuffered };

class RunStore {
 public:
  class Upload;

  // Opens (creating when missing) the store in folder `dir`, then drops the uploads a previous
  // process left unfinished. Internal / IOError-like statuses from RocksDB otherwise, e.g. when
  // another process holds the store.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const std::string& dir,
                                                        const RunStoreOptions& options = {});

  RunStore(const RunStore&) = delete;
  RunStore& operator=(const RunStore&) = delete;
  // Closes the database. Uploads must be destroyed first.
  ~RunStore();

  // ---- Runs and events ----

  // A small unsynced write: OK while the database accepts writes; the RocksDB error otherwise
  // (e.g. after a background error such as a full disk, when RocksDB stops writes).
  absl::Status CheckWritable();

  // Every stored run, in key order.
  absl::StatusOr<std::vector<v1::Run>> LoadRuns();

  // Writes the run record and appends `events` in one batch. The caller numbers the events
  // (consecutive, after the run's stored ones). InvalidArgument for a run id with '/'.
  absl::Status WriteRun(const v1::Run& run, const std::vector<v1::RunEvent>& events,
                        Durability durability);

  // Up to `max_events` events of the run with sequence > `after_sequence`, oldest first.
  absl::StatusOr<std::vector<v1::RunEvent>> ReadEvents(const std::string& run_id,
                                                       uint64_t after_sequence, size_t max_events);

  // Removes the run record, its events, manifests, chunks and history, in one synced batch.
  absl::Status DeleteRun(const std::string& run_id);

  // ---- Checkpoints ----

  // Starts staging a checkpoint of `run_id` at `step` (a synced staging record).
  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const std::string& run_id, int64_t step);

  // Commits `upload` (see the file comment) with `manifest`, whose run id, step and upload id
  // are filled in from the upload. A manifest already stored for the same step is replaced and
  // its chunks deleted. Keeps the newest `retention` checkpoints by step (all when
  // retention <= 0) and returns the manifests it deleted. `run` and `events` are written in the
  // same batch (see WriteRun). FailedPrecondition when the upload was already committed.
  absl::StatusOr<std::vector<v1::CheckpointManifest>> CommitUpload(
      Upload& upload, v1::CheckpointManifest manifest, const v1::Run& run,
      const std::vector<v1::RunEvent>& events, int retention);

  // The committed checkpoints of a run, by step.
  absl::StatusOr<std::vector<v1::CheckpointManifest>> ListCheckpoints(const std::string& run_id);

  // Chunk `index` of a committed checkpoint. DataLoss when it is missing.
  absl::StatusOr<std::string> ReadChunk(const v1::CheckpointManifest& manifest, int32_t index);

  // Chunks stored under the run, committed or staged: a consistency check for tests and
  // operators (it equals the sum of the manifests' chunk counts, the feature dashboards'
  // included, once no upload is in progress).
  absl::StatusOr<int64_t> CountChunks(const std::string& run_id);

  // ---- Feature dashboards (an upload begun with BeginUpload like a checkpoint's) ----

  // Commits `upload` as the run's feature dashboards with `manifest` (run id, step and upload
  // id filled in from the upload), replacing the previous ones (their chunks deleted), and
  // writes `run` and `events` in the same synced batch. Checkpoint retention never touches
  // them; DeleteRun does. FailedPrecondition when the upload was already committed.
  absl::Status CommitFeatures(Upload& upload, v1::CheckpointManifest manifest, const v1::Run& run,
                              const std::vector<v1::RunEvent>& events);
  // The manifest of the run's feature dashboards. NotFound when it has none.
  absl::StatusOr<v1::CheckpointManifest> FindFeatures(const std::string& run_id);

  // ---- Progress history (services/controller/console/progress_history.h) ----

  // Deletes the run's points at `removed_steps` and writes `added` under its metrics' step, in
  // one buffered batch (like progress, it may lose the last moments before a machine crash).
  absl::Status WriteHistory(const std::string& run_id, const std::vector<int64_t>& removed_steps,
                            const v1::ProgressPoint& added);
  // The run's stored points, by step.
  absl::StatusOr<std::vector<v1::ProgressPoint>> ReadHistory(const std::string& run_id);

  // How many unfinished uploads Open dropped.
  int dropped_uploads() const { return dropped_uploads_; }

  // The secret stored under `name`; when there is none yet, stores `fresh` (a synced write) and
  // returns it. The controller keeps its rendezvous secret here, so that the keys it derives
  // from it survive a restart.
  absl::StatusOr<std::string> LoadOrStoreSecret(const std::string& name, const std::string& fresh);

 private:
  RunStore() = default;
  // A RocksDB status as an absl::Status ("run store: <what>: <RocksDB's message>"), with what to
  // do added when the data dir is full (ResourceExhausted) or corrupt (DataLoss).
  absl::Status Rocks(const rocksdb::Status& status, absl::string_view what) const;
  absl::Status DropStagedUploads();
  // Deletes the staged upload's chunks and record (synced).
  absl::Status AbortUpload(uint64_t upload_id, const std::string& prefix);

  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* runs_ = nullptr;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* manifests_ = nullptr;
  rocksdb::ColumnFamilyHandle* blobs_ = nullptr;
  rocksdb::ColumnFamilyHandle* staging_ = nullptr;
  rocksdb::ColumnFamilyHandle* history_ = nullptr;
  rocksdb::ColumnFamilyHandle* features_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  std::mutex mutex_;  // Guards next_upload_id_; serialises commits.
  uint64_t next_upload_id_ = 1;
  int dropped_uploads_ = 0;
};

// A checkpoint being staged: chunks are appended in order, then RunStore::CommitUpload makes it
// visible. Destroying it uncommitted deletes what it staged.
class RunStore::Upload {
 public:
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  ~Upload();

  // Stores the next chunk (index chunk_count()). Not synced: the commit is.
  absl::Status AddChunk(absl::string_view data);

  const std::string& run_id() const { return run_id_; }
  int64_t step() const { return step_; }
  uint64_t upload_id() const { return upload_id_; }
  int32_t chunk_count() const { return chunk_count_; }
  int64_t bytes() const { return bytes_; }

 private:
  friend class RunStore;
  Upload(RunStore* store, std::string run_id, int64_t step, uint64_t upload_id);

  RunStore* const store_;
  const std::string run_id_;
  const int64_t step_;
  const uint64_t upload_id_;
  const std::string prefix_;  // blob key prefix of this upload
  int32_t chunk_count_ = 0;
  int64_t bytes_ = 0;
  bool committed_ = false;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_RUN_STORE_H_
