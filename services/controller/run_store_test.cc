#include "services/controller/run_store.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "support/temp_dir.h"

namespace sae::controller {
namespace {

using support::TempDir;

v1::Run MakeRun(const std::string& id, v1::RunState state) {
  v1::Run run;
  run.set_run_id(id);
  run.set_name("demo");
  run.set_state(state);
  run.set_config_yaml("lr: 0.001\n");
  return run;
}

v1::RunEvent MakeEvent(const std::string& run_id, uint64_t sequence, const std::string& text) {
  v1::RunEvent event;
  event.set_run_id(run_id);
  event.set_sequence(sequence);
  event.set_message(text);
  return event;
}

std::unique_ptr<RunStore> OpenStore(const std::string& dir) {
  auto store = RunStore::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Stages `chunks` chunks of `chunk_bytes` bytes each for (run_id, step) and commits them.
v1::CheckpointManifest Commit(RunStore& store, const v1::Run& run, int64_t step, int chunks,
                              size_t chunk_bytes, int retention,
                              std::vector<v1::CheckpointManifest>* deleted = nullptr) {
  auto upload = store.BeginUpload(run.run_id(), step);
  EXPECT_TRUE(upload.ok()) << upload.status();
  for (int i = 0; i < chunks; ++i) {
    EXPECT_TRUE((*upload)->AddChunk(std::string(chunk_bytes, static_cast<char>('a' + i))).ok());
  }
  v1::CheckpointManifest manifest;
  manifest.set_tokens(step * 10);
  manifest.set_chunk_count(chunks);
  manifest.set_total_bytes(static_cast<int64_t>(chunks * chunk_bytes));
  auto removed = store.CommitUpload(**upload, manifest, run, {}, retention);
  EXPECT_TRUE(removed.ok()) << removed.status();
  if (deleted != nullptr && removed.ok()) *deleted = *removed;
  auto listed = store.ListCheckpoints(run.run_id());
  for (const auto& m : *listed) {
    if (m.step() == step) return m;
  }
  ADD_FAILURE() << "checkpoint " << step << " not listed after its commit";
  return manifest;
}

TEST(RunStoreTest, RunsAndEventsSurviveReopening) {
  TempDir folder;
  {
    auto store = OpenStore(folder.path());
    v1::Run run = MakeRun("demo-abcde", v1::RUN_STATE_RUNNING);
    ASSERT_TRUE(store
                    ->WriteRun(run,
                               {MakeEvent("demo-abcde", 1, "submitted"),
                                MakeEvent("demo-abcde", 2, "running")},
                               Durability::kSynced)
                    .ok());
    ASSERT_TRUE(
        store->WriteRun(MakeRun("other-zzzzz", v1::RUN_STATE_PENDING), {}, Durability::kBuffered)
            .ok());
  }
  auto store = OpenStore(folder.path());
  auto runs = store->LoadRuns();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].run_id(), "demo-abcde");
  EXPECT_EQ((*runs)[0].state(), v1::RUN_STATE_RUNNING);
  EXPECT_EQ((*runs)[0].config_yaml(), "lr: 0.001\n");
  auto events = store->ReadEvents("demo-abcde", 0, 100);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[1].message(), "running");
}

TEST(RunStoreTest, ASecretIsStoredOnceAndSurvivesReopening) {
  TempDir folder;
  {
    auto store = OpenStore(folder.path());
    auto first = store->LoadOrStoreSecret("rendezvous", "secret-one");
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(*first, "secret-one");
    auto again = store->LoadOrStoreSecret("rendezvous", "secret-two");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, "secret-one") << "a stored secret is never replaced";
    auto other = store->LoadOrStoreSecret("other", "secret-three");
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(*other, "secret-three");
  }
  auto store = OpenStore(folder.path());
  auto reopened = store->LoadOrStoreSecret("rendezvous", "secret-four");
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*reopened, "secret-one");
}

TEST(RunStoreTest, EventsResumeAfterAnySequenceInOrder) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  std::vector<v1::RunEvent> events;
  // 300 events: past one byte of sequence, so the big-endian keys must sort numerically.
  for (uint64_t seq = 1; seq <= 300; ++seq) events.push_back(MakeEvent("r-1", seq, "e"));
  ASSERT_TRUE(store->WriteRun(run, events, Durability::kSynced).ok());
  // A run whose id extends this one's must not leak into it.
  ASSERT_TRUE(store
                  ->WriteRun(MakeRun("r-10", v1::RUN_STATE_RUNNING),
                             {MakeEvent("r-10", 1, "other")}, Durability::kSynced)
                  .ok());
  auto tail = store->ReadEvents("r-1", 255, 1000);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 45u);
  EXPECT_EQ(tail->front().sequence(), 256u);
  EXPECT_EQ(tail->back().sequence(), 300u);
  auto page = store->ReadEvents("r-1", 0, 10);
  ASSERT_EQ(page->size(), 10u);
  EXPECT_EQ(page->back().sequence(), 10u);
  EXPECT_TRUE(store->ReadEvents("r-1", 300, 10)->empty());
}

TEST(RunStoreTest, CheckpointIsInvisibleUntilItsCommit) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  auto upload = store->BeginUpload("r-1", 100);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->AddChunk(std::string(10000, 'x')).ok());
  ASSERT_TRUE((*upload)->AddChunk(std::string(500, 'y')).ok());
  EXPECT_TRUE(store->ListCheckpoints("r-1")->empty());

  v1::CheckpointManifest manifest;
  manifest.set_chunk_count(2);
  ASSERT_TRUE(store->CommitUpload(**upload, manifest, run, {}, 3).ok());
  auto listed = store->ListCheckpoints("r-1");
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].step(), 100);
  EXPECT_EQ(*store->ReadChunk((*listed)[0], 0), std::string(10000, 'x'));
  EXPECT_EQ(*store->ReadChunk((*listed)[0], 1), std::string(500, 'y'));
  EXPECT_TRUE(absl::IsDataLoss(store->ReadChunk((*listed)[0], 2).status()));
}

TEST(RunStoreTest, UploadDestroyedWithoutCommitLeavesNothing) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  {
    auto upload = store->BeginUpload("r-1", 100);
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->AddChunk(std::string(10000, 'x')).ok());
    EXPECT_EQ(*store->CountChunks("r-1"), 1);
  }
  EXPECT_EQ(*store->CountChunks("r-1"), 0);
  EXPECT_TRUE(store->ListCheckpoints("r-1")->empty());
}

TEST(RunStoreTest, UploadInterruptedByACrashIsDroppedOnOpen) {
  TempDir folder;
  {
    auto store = OpenStore(folder.path());
    auto upload = store->BeginUpload("r-1", 100);
    ASSERT_TRUE(upload.ok());
    ASSERT_TRUE((*upload)->AddChunk(std::string(100000, 'x')).ok());
    ASSERT_TRUE((*upload)->AddChunk(std::string(100000, 'y')).ok());
    // As if the process died here: the upload neither commits nor cleans up. The object is kept
    // reachable from a static (volatile: the store must not be optimised away), so that
    // LeakSanitizer does not report the simulated crash.
    static void* volatile crashed_upload = nullptr;
    crashed_upload = upload->release();
  }
  auto store = OpenStore(folder.path());
  EXPECT_EQ(store->dropped_uploads(), 1);
  EXPECT_EQ(*store->CountChunks("r-1"), 0);
  EXPECT_TRUE(store->ListCheckpoints("r-1")->empty());
}

TEST(RunStoreTest, ManifestsAndChunksSurviveReopening) {
  TempDir folder;
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  {
    auto store = OpenStore(folder.path());
    Commit(*store, run, 100, 3, 5000, 3);
  }
  auto store = OpenStore(folder.path());
  EXPECT_EQ(store->dropped_uploads(), 0);
  auto listed = store->ListCheckpoints("r-1");
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].tokens(), 1000);
  EXPECT_EQ(*store->ReadChunk((*listed)[0], 2), std::string(5000, 'c'));
}

TEST(RunStoreTest, RetentionKeepsTheNewestCheckpointsAndDeletesTheirChunks) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  std::vector<v1::CheckpointManifest> deleted;
  for (int64_t step : {100, 200, 300}) Commit(*store, run, step, 2, 5000, 2, &deleted);
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0].step(), 100);
  Commit(*store, run, 400, 2, 5000, 2, &deleted);
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0].step(), 200);
  auto listed = store->ListCheckpoints("r-1");
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].step(), 300);
  EXPECT_EQ((*listed)[1].step(), 400);
  EXPECT_EQ(*store->CountChunks("r-1"), 4);
}

TEST(RunStoreTest, CommitAtAStepAlreadyStoredReplacesIt) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  Commit(*store, run, 100, 3, 5000, 5);
  v1::CheckpointManifest again = Commit(*store, run, 100, 1, 7000, 5);
  auto listed = store->ListCheckpoints("r-1");
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].upload_id(), again.upload_id());
  EXPECT_EQ(*store->CountChunks("r-1"), 1);
  EXPECT_EQ(*store->ReadChunk((*listed)[0], 0), std::string(7000, 'a'));
}

TEST(RunStoreTest, CommitWritesTheRunAndItsEventsInTheSameBatch) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_RUNNING);
  run.set_latest_checkpoint_step(100);
  auto upload = store->BeginUpload("r-1", 100);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE(store
                  ->CommitUpload(**upload, v1::CheckpointManifest(), run,
                                 {MakeEvent("r-1", 1, "checkpoint at step 100 committed")}, 3)
                  .ok());
  EXPECT_EQ(store->LoadRuns()->at(0).latest_checkpoint_step(), 100);
  EXPECT_EQ(store->ReadEvents("r-1", 0, 10)->at(0).message(), "checkpoint at step 100 committed");
  EXPECT_TRUE(absl::IsFailedPrecondition(
      store->CommitUpload(**upload, v1::CheckpointManifest(), run, {}, 3).status()));
}

TEST(RunStoreTest, DeleteRunRemovesItsRecordEventsManifestsAndChunks) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  v1::Run run = MakeRun("r-1", v1::RUN_STATE_SUCCEEDED);
  v1::Run neighbour = MakeRun("r-10", v1::RUN_STATE_SUCCEEDED);
  ASSERT_TRUE(store->WriteRun(run, {MakeEvent("r-1", 1, "x")}, Durability::kSynced).ok());
  ASSERT_TRUE(store->WriteRun(neighbour, {MakeEvent("r-10", 1, "y")}, Durability::kSynced).ok());
  Commit(*store, run, 100, 2, 5000, 3);
  Commit(*store, neighbour, 100, 2, 5000, 3);

  ASSERT_TRUE(store->DeleteRun("r-1").ok());
  auto runs = store->LoadRuns();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].run_id(), "r-10");
  EXPECT_TRUE(store->ReadEvents("r-1", 0, 10)->empty());
  EXPECT_TRUE(store->ListCheckpoints("r-1")->empty());
  EXPECT_EQ(*store->CountChunks("r-1"), 0);
  EXPECT_EQ(store->ReadEvents("r-10", 0, 10)->size(), 1u);
  EXPECT_EQ(*store->CountChunks("r-10"), 2);
}

// Stages `chunks` chunks of `chunk_bytes` bytes as the run's feature dashboards and commits
// them.
void CommitFeatures(RunStore& store, const v1::Run& run, int64_t step, int chunks,
                    size_t chunk_bytes) {
  auto upload = store.BeginUpload(run.run_id(), step);
  ASSERT_TRUE(upload.ok()) << upload.status();
  for (int i = 0; i < chunks; ++i) {
    ASSERT_TRUE((*upload)->AddChunk(std::string(chunk_bytes, static_cast<char>('p' + i))).ok());
  }
  v1::CheckpointManifest manifest;
  manifest.set_chunk_count(chunks);
  manifest.set_total_bytes(static_cast<int64_t>(chunks * chunk_bytes));
  v1::Run updated = run;
  updated.set_features_step(step);
  ASSERT_TRUE(store.CommitFeatures(**upload, manifest, updated, {}).ok());
}

TEST(RunStoreTest, FeatureDashboardsReplaceTheirPredecessorOutliveRetentionAndGoWithTheRun) {
  TempDir folder;
  v1::Run run = MakeRun("demo-abcde", v1::RUN_STATE_SUCCEEDED);
  {
    auto store = OpenStore(folder.path());
    EXPECT_TRUE(absl::IsNotFound(store->FindFeatures(run.run_id()).status()));
    Commit(*store, run, 100, 2, 5000, /*retention=*/1);
    CommitFeatures(*store, run, 100, 3, 6000);
    CommitFeatures(*store, run, 100, 4, 6000);  // replaces the first
    EXPECT_EQ((*store->LoadRuns())[0].features_step(), 100) << "the run record in the same batch";
    auto features = store->FindFeatures(run.run_id());
    ASSERT_TRUE(features.ok()) << features.status();
    EXPECT_EQ(features->chunk_count(), 4);
    EXPECT_EQ(features->run_id(), run.run_id());
    EXPECT_EQ(features->step(), 100);
    auto chunk = store->ReadChunk(*features, 3);
    ASSERT_TRUE(chunk.ok());
    EXPECT_EQ(*chunk, std::string(6000, 's'));
    // Retention (1) deletes the checkpoint at step 100, never the dashboards.
    run.set_features_step(100);  // as the controller keeps the record
    Commit(*store, run, 200, 2, 5000, /*retention=*/1);
    EXPECT_EQ(*store->CountChunks(run.run_id()), 2 + 4);
    EXPECT_EQ(store->ListCheckpoints(run.run_id())->size(), 1u);
  }
  auto store = OpenStore(folder.path());  // they survive reopening
  auto features = store->FindFeatures(run.run_id());
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_TRUE(store->ReadChunk(*features, 0).ok());
  ASSERT_TRUE(store->DeleteRun(run.run_id()).ok());
  EXPECT_TRUE(absl::IsNotFound(store->FindFeatures(run.run_id()).status()));
  EXPECT_EQ(*store->CountChunks(run.run_id()), 0);
}

TEST(RunStoreTest, RunIdsWithASlashAreRefused) {
  TempDir folder;
  auto store = OpenStore(folder.path());
  EXPECT_TRUE(absl::IsInvalidArgument(
      store->WriteRun(MakeRun("a/b", v1::RUN_STATE_PENDING), {}, Durability::kSynced)));
}

TEST(RunStoreTest, SecondOpenOfTheSameFolderFails) {
  TempDir folder;
  auto first = OpenStore(folder.path());
  EXPECT_FALSE(RunStore::Open(folder.path()).ok());
}

}  // namespace
}  // namespace sae::controller
