#include "services/controller/run_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "services/controller/run_store_rocksdb.h"

namespace sae::controller {
namespace {

constexpr char kRunsFamily[] = "runs";
constexpr char kEventsFamily[] = "events";
constexpr char kManifestsFamily[] = "manifests";
constexpr char kBlobsFamily[] = "blobs";
constexpr char kStagingFamily[] = "staging";
constexpr char kHistoryFamily[] = "history";
constexpr char kFeaturesFamily[] = "features";
constexpr char kNextUploadIdKey[] = "next_upload_id";

void AppendBigEndian(uint64_t value, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint64_t ReadBigEndian(absl::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<unsigned char>(c);
  return value;
}

std::string RunPrefix(absl::string_view run_id) { return absl::StrCat(run_id, "/"); }

// The first key after every key that starts with RunPrefix(run_id): '0' follows '/'.
std::string RunPrefixEnd(absl::string_view run_id) { return absl::StrCat(run_id, "0"); }

std::string NumberKey(absl::string_view run_id, uint64_t number) {
  std::string key = RunPrefix(run_id);
  AppendBigEndian(number, 8, &key);
  return key;
}

std::string UploadPrefix(absl::string_view run_id, int64_t step, uint64_t upload_id) {
  std::string key = NumberKey(run_id, static_cast<uint64_t>(step));
  AppendBigEndian(upload_id, 8, &key);
  return key;
}

std::string ChunkKey(const std::string& upload_prefix, int32_t index) {
  std::string key = upload_prefix;
  AppendBigEndian(static_cast<uint32_t>(index), 4, &key);
  return key;
}

// The end of an upload's key range: its prefix with the last byte incremented (upload ids
// below 2^64 - 1, so the increment never carries out of the id).
std::string UploadPrefixEnd(const std::string& upload_prefix) {
  std::string end = upload_prefix;
  for (size_t i = end.size(); i-- > 0;) {
    if (static_cast<unsigned char>(end[i]) != 0xff) {
      end[i] = static_cast<char>(static_cast<unsigned char>(end[i]) + 1);
      end.resize(i + 1);
      break;
    }
  }
  return end;
}

std::string UploadIdKey(uint64_t upload_id) {
  std::string key;
  AppendBigEndian(upload_id, 8, &key);
  return key;
}

absl::Status CheckRunId(absl::string_view run_id) {
  if (run_id.empty() || run_id.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("run store: bad run id '", run_id, "'"));
  }
  return absl::OkStatus();
}

template <typename Message>
absl::StatusOr<Message> Parse(const rocksdb::Slice& value, absl::string_view what) {
  Message message;
  if (!message.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return absl::DataLossError(absl::StrCat("run store: unreadable ", what));
  }
  return message;
}

rocksdb::WriteOptions WriteOptionsFor(Durability durability) {
  rocksdb::WriteOptions options;
  options.sync = durability == Durability::kSynced;
  return options;
}

}  // namespace

absl::Status RunStore::CheckWritable() {
  return Rocks(db_->Put(WriteOptionsFor(Durability::kBuffered), default_, "health-probe",
                        absl::StrCat(absl::ToUnixMillis(absl::Now()))),
               "the run store does not accept writes");
}

// ---- Open / close ----

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const std::string& dir,
                                                         const RunStoreOptions& options) {
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));
  rocksdb::DBOptions db_options;
  // Every read checks the block (and blob record) checksums it reads (ReadOptions'
  // verify_checksums, on by default), and with paranoid_checks a failed write or a corrupt file
  // stops the database's writes instead of going on: corruption surfaces as DataLoss naming
  // the file, never as other bytes.
  db_options.paranoid_checks = true;
  db_options.info_log = NewSpdlogLogger();
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;

  rocksdb::ColumnFamilyOptions plain;
  rocksdb::ColumnFamilyOptions blob;
  blob.enable_blob_files = true;
  blob.min_blob_size = options.min_blob_size;
  blob.enable_blob_garbage_collection = true;
  // Chunks are float tensors: compression gains little and costs CPU.
  blob.blob_compression_type = rocksdb::kNoCompression;
  // Staged chunks and finished checkpoints are written once and read rarely.
  blob.write_buffer_size = 64 << 20;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, plain},
      {kRunsFamily, plain},
      {kEventsFamily, plain},
      {kManifestsFamily, plain},
      {kBlobsFamily, blob},
      {kStagingFamily, plain},
      {kHistoryFamily, plain},
      {kFeaturesFamily, plain},
  };
  std::unique_ptr<RunStore> store(new RunStore());
  store->dir_ = dir;
  rocksdb::DB* db = nullptr;
  SAE_RETURN_IF_ERROR(
      store->Rocks(rocksdb::DB::Open(db_options, dir, families, &store->handles_, &db),
                   absl::StrCat("cannot open ", dir)));
  store->db_.reset(db);
  store->default_ = store->handles_[0];
  store->runs_ = store->handles_[1];
  store->events_ = store->handles_[2];
  store->manifests_ = store->handles_[3];
  store->blobs_ = store->handles_[4];
  store->staging_ = store->handles_[5];
  store->history_ = store->handles_[6];
  store->features_ = store->handles_[7];

  std::string value;
  rocksdb::Status got = db->Get(rocksdb::ReadOptions(), store->default_, kNextUploadIdKey, &value);
  if (got.ok()) {
    store->next_upload_id_ = ReadBigEndian(value);
  } else if (!got.IsNotFound()) {
    return store->Rocks(got, "cannot read the upload counter");
  }
  SAE_RETURN_IF_ERROR(store->DropStagedUploads());
  return store;
}

RunStore::~RunStore() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

absl::Status RunStore::DropStagedUploads() {
  std::vector<std::pair<uint64_t, std::string>> staged;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), staging_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    staged.emplace_back(ReadBigEndian(it->key().ToString()), it->value().ToString());
  }
  SAE_RETURN_IF_ERROR(Rocks(it->status(), "cannot list staged uploads"));
  for (const auto& [upload_id, prefix] : staged) {
    SAE_RETURN_IF_ERROR(AbortUpload(upload_id, prefix));
    ++dropped_uploads_;
  }
  return absl::OkStatus();
}

// ---- Runs and events ----

absl::StatusOr<std::vector<v1::Run>> RunStore::LoadRuns() {
  std::vector<v1::Run> runs;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), runs_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    SAE_ASSIGN_OR_RETURN(v1::Run run,
                         Parse<v1::Run>(it->value(), absl::StrCat("run ", it->key().ToString())));
    runs.push_back(std::move(run));
  }
  SAE_RETURN_IF_ERROR(Rocks(it->status(), "cannot list runs"));
  return runs;
}

namespace {

absl::Status AddRunToBatch(const v1::Run& run, const std::vector<v1::RunEvent>& events,
                           rocksdb::ColumnFamilyHandle* runs,
                           rocksdb::ColumnFamilyHandle* events_cf, rocksdb::WriteBatch* batch) {
  SAE_RETURN_IF_ERROR(CheckRunId(run.run_id()));
  SAE_RETURN_IF_ERROR(
      FromRocks(batch->Put(runs, run.run_id(), run.SerializeAsString()), "cannot batch a run"));
  for (const v1::RunEvent& event : events) {
    SAE_RETURN_IF_ERROR(FromRocks(
        batch->Put(events_cf, NumberKey(run.run_id(), event.sequence()), event.SerializeAsString()),
        "cannot batch an event"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunStore::WriteRun(const v1::Run& run, const std::vector<v1::RunEvent>& events,
                                Durability durability) {
  rocksdb::WriteBatch batch;
  SAE_RETURN_IF_ERROR(AddRunToBatch(run, events, runs_, events_, &batch));
  return Rocks(db_->Write(WriteOptionsFor(durability), &batch),
               absl::StrCat("cannot write run ", run.run_id()));
}

absl::StatusOr<std::vector<v1::RunEvent>> RunStore::ReadEvents(const std::string& run_id,
                                                               uint64_t after_sequence,
                                                               size_t max_events) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::vector<v1::RunEvent> events;
  std::string end = RunPrefixEnd(run_id);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, events_));
  for (it->Seek(NumberKey(run_id, after_sequence + 1)); it->Valid() && events.size() < max_events;
       it->Next()) {
    SAE_ASSIGN_OR_RETURN(v1::RunEvent event, Parse<v1::RunEvent>(it->value(), "event"));
    events.push_back(std::move(event));
  }
  SAE_RETURN_IF_ERROR(Rocks(it->status(), absl::StrCat("cannot read events of ", run_id)));
  return events;
}

absl::Status RunStore::DeleteRun(const std::string& run_id) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::lock_guard<std::mutex> lock(mutex_);
  rocksdb::WriteBatch batch;
  std::string begin = RunPrefix(run_id);
  std::string end = RunPrefixEnd(run_id);
  batch.Delete(runs_, run_id);
  batch.DeleteRange(events_, begin, end);
  batch.DeleteRange(manifests_, begin, end);
  batch.DeleteRange(blobs_, begin, end);
  batch.DeleteRange(history_, begin, end);
  batch.Delete(features_, run_id);
  return Rocks(db_->Write(WriteOptionsFor(Durability::kSynced), &batch),
               absl::StrCat("cannot delete run ", run_id));
}

// ---- Progress history ----

absl::Status RunStore::WriteHistory(const std::string& run_id,
                                    const std::vector<int64_t>& removed_steps,
                                    const v1::ProgressPoint& added) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  if (added.metrics().step() < 0) return absl::InvalidArgumentError("run store: a negative step");
  rocksdb::WriteBatch batch;
  for (int64_t step : removed_steps) {
    SAE_RETURN_IF_ERROR(
        Rocks(batch.Delete(history_, NumberKey(run_id, step)), "cannot batch a history delete"));
  }
  SAE_RETURN_IF_ERROR(Rocks(
      batch.Put(history_, NumberKey(run_id, added.metrics().step()), added.SerializeAsString()),
      "cannot batch a history point"));
  return Rocks(db_->Write(WriteOptionsFor(Durability::kBuffered), &batch),
               absl::StrCat("cannot write the history of ", run_id));
}

absl::StatusOr<std::vector<v1::ProgressPoint>> RunStore::ReadHistory(const std::string& run_id) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::vector<v1::ProgressPoint> points;
  std::string end = RunPrefixEnd(run_id);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, history_));
  for (it->Seek(RunPrefix(run_id)); it->Valid(); it->Next()) {
    SAE_ASSIGN_OR_RETURN(v1::ProgressPoint point,
                         Parse<v1::ProgressPoint>(it->value(), "history point"));
    points.push_back(std::move(point));
  }
  SAE_RETURN_IF_ERROR(Rocks(it->status(), absl::StrCat("cannot read the history of ", run_id)));
  return points;
}

// ---- Checkpoints ----

absl::StatusOr<std::unique_ptr<RunStore::Upload>> RunStore::BeginUpload(const std::string& run_id,
                                                                        int64_t step) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  if (step < 0) return absl::InvalidArgumentError("run store: a negative checkpoint step");
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t upload_id = next_upload_id_;
  std::string next;
  AppendBigEndian(upload_id + 1, 8, &next);
  rocksdb::WriteBatch batch;
  batch.Put(default_, kNextUploadIdKey, next);
  batch.Put(staging_, UploadIdKey(upload_id), UploadPrefix(run_id, step, upload_id));
  SAE_RETURN_IF_ERROR(
      Rocks(db_->Write(WriteOptionsFor(Durability::kSynced), &batch), "cannot stage an upload"));
  next_upload_id_ = upload_id + 1;
  return std::unique_ptr<Upload>(new Upload(this, run_id, step, upload_id));
}

absl::Status RunStore::AbortUpload(uint64_t upload_id, const std::string& prefix) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(blobs_, prefix, UploadPrefixEnd(prefix));
  batch.Delete(staging_, UploadIdKey(upload_id));
  return Rocks(db_->Write(WriteOptionsFor(Durability::kSynced), &batch),
               "cannot drop a staged upload");
}

absl::StatusOr<std::vector<v1::CheckpointManifest>> RunStore::CommitUpload(
    Upload& upload, v1::CheckpointManifest manifest, const v1::Run& run,
    const std::vector<v1::RunEvent>& events, int retention) {
  if (upload.committed_) {
    return absl::FailedPreconditionError("run store: the upload was already committed");
  }
  manifest.set_run_id(upload.run_id());
  manifest.set_step(upload.step());
  manifest.set_upload_id(upload.upload_id());

  std::lock_guard<std::mutex> lock(mutex_);
  SAE_ASSIGN_OR_RETURN(std::vector<v1::CheckpointManifest> kept, ListCheckpoints(upload.run_id()));
  std::vector<v1::CheckpointManifest> deleted;
  for (auto it = kept.begin(); it != kept.end();) {
    if (it->step() == manifest.step()) {
      deleted.push_back(*it);
      it = kept.erase(it);
    } else {
      ++it;
    }
  }
  kept.push_back(manifest);
  std::sort(kept.begin(), kept.end(),
            [](const auto& a, const auto& b) { return a.step() < b.step(); });
  if (retention > 0 && kept.size() > static_cast<size_t>(retention)) {
    size_t excess = kept.size() - static_cast<size_t>(retention);
    deleted.insert(deleted.end(), kept.begin(), kept.begin() + static_cast<long>(excess));
  }

  rocksdb::WriteBatch batch;
  batch.Put(manifests_, NumberKey(manifest.run_id(), static_cast<uint64_t>(manifest.step())),
            manifest.SerializeAsString());
  batch.Delete(staging_, UploadIdKey(upload.upload_id()));
  for (const v1::CheckpointManifest& old : deleted) {
    std::string prefix = UploadPrefix(old.run_id(), old.step(), old.upload_id());
    batch.DeleteRange(blobs_, prefix, UploadPrefixEnd(prefix));
    // The step of a replaced manifest holds the new one (written above).
    if (old.step() != manifest.step()) {
      batch.Delete(manifests_, NumberKey(old.run_id(), static_cast<uint64_t>(old.step())));
    }
  }
  SAE_RETURN_IF_ERROR(AddRunToBatch(run, events, runs_, events_, &batch));
  SAE_RETURN_IF_ERROR(Rocks(db_->Write(WriteOptionsFor(Durability::kSynced), &batch),
                            absl::StrCat("cannot commit a checkpoint of ", run.run_id())));
  upload.committed_ = true;
  return deleted;
}

absl::Status RunStore::CommitFeatures(Upload& upload, v1::CheckpointManifest manifest,
                                      const v1::Run& run, const std::vector<v1::RunEvent>& events) {
  if (upload.committed_) {
    return absl::FailedPreconditionError("run store: the upload was already committed");
  }
  manifest.set_run_id(upload.run_id());
  manifest.set_step(upload.step());
  manifest.set_upload_id(upload.upload_id());
  std::lock_guard<std::mutex> lock(mutex_);
  absl::StatusOr<v1::CheckpointManifest> previous = FindFeatures(upload.run_id());
  if (!previous.ok() && !absl::IsNotFound(previous.status())) return previous.status();
  rocksdb::WriteBatch batch;
  batch.Put(features_, manifest.run_id(), manifest.SerializeAsString());
  batch.Delete(staging_, UploadIdKey(upload.upload_id()));
  if (previous.ok()) {
    std::string prefix = UploadPrefix(previous->run_id(), previous->step(), previous->upload_id());
    batch.DeleteRange(blobs_, prefix, UploadPrefixEnd(prefix));
  }
  SAE_RETURN_IF_ERROR(AddRunToBatch(run, events, runs_, events_, &batch));
  SAE_RETURN_IF_ERROR(Rocks(db_->Write(WriteOptionsFor(Durability::kSynced), &batch),
                            absl::StrCat("cannot commit the features of ", run.run_id())));
  upload.committed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<v1::CheckpointManifest> RunStore::FindFeatures(const std::string& run_id) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::string value;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), features_, run_id, &value);
  if (status.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no feature dashboards (saectl "
                                            "features ", run_id, " makes them)"));
  }
  SAE_RETURN_IF_ERROR(Rocks(status, "cannot read a features manifest"));
  return Parse<v1::CheckpointManifest>(value, "features manifest");
}

absl::StatusOr<std::vector<v1::CheckpointManifest>> RunStore::ListCheckpoints(
    const std::string& run_id) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::vector<v1::CheckpointManifest> manifests;
  std::string end = RunPrefixEnd(run_id);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, manifests_));
  for (it->Seek(RunPrefix(run_id)); it->Valid(); it->Next()) {
    SAE_ASSIGN_OR_RETURN(v1::CheckpointManifest manifest,
                         Parse<v1::CheckpointManifest>(it->value(), "checkpoint manifest"));
    manifests.push_back(std::move(manifest));
  }
  SAE_RETURN_IF_ERROR(Rocks(it->status(), absl::StrCat("cannot list checkpoints of ", run_id)));
  return manifests;
}

absl::StatusOr<std::string> RunStore::ReadChunk(const v1::CheckpointManifest& manifest,
                                                int32_t index) {
  SAE_RETURN_IF_ERROR(CheckRunId(manifest.run_id()));
  std::string key =
      ChunkKey(UploadPrefix(manifest.run_id(), manifest.step(), manifest.upload_id()), index);
  std::string value;
  rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), blobs_, key, &value);
  if (status.IsNotFound()) {
    return absl::DataLossError(absl::StrCat("run store: checkpoint ", manifest.step(), " of ",
                                            manifest.run_id(), " has lost chunk ", index));
  }
  SAE_RETURN_IF_ERROR(
      Rocks(status, absl::StrCat("cannot read chunk ", index, " of the checkpoint at step ",
                                 manifest.step(), " of run ", manifest.run_id())));
  return value;
}

absl::StatusOr<int64_t> RunStore::CountChunks(const std::string& run_id) {
  SAE_RETURN_IF_ERROR(CheckRunId(run_id));
  std::string end = RunPrefixEnd(run_id);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, blobs_));
  int64_t count = 0;
  for (it->Seek(RunPrefix(run_id)); it->Valid(); it->Next()) ++count;
  SAE_RETURN_IF_ERROR(Rocks(it->status(), "cannot count chunks"));
  return count;
}

// ---- Upload ----

RunStore::Upload::Upload(RunStore* store, std::string run_id, int64_t step, uint64_t upload_id)
    : store_(store),
      run_id_(std::move(run_id)),
      step_(step),
      upload_id_(upload_id),
      prefix_(UploadPrefix(run_id_, step_, upload_id_)) {}

RunStore::Upload::~Upload() {
  if (committed_) return;
  // Best effort: what stays behind is dropped by the next Open.
  (void)store_->AbortUpload(upload_id_, prefix_);
}

absl::Status RunStore::Upload::AddChunk(absl::string_view data) {
  if (committed_) return absl::FailedPreconditionError("run store: the upload was committed");
  rocksdb::Slice value(data.data(), data.size());
  SAE_RETURN_IF_ERROR(
      store_->Rocks(store_->db_->Put(WriteOptionsFor(Durability::kBuffered), store_->blobs_,
                                     ChunkKey(prefix_, chunk_count_), value),
                    "cannot stage a checkpoint chunk"));
  ++chunk_count_;
  bytes_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

}  // namespace sae::controller
