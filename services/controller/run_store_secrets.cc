// RunStore::LoadOrStoreSecret: the controller's own secrets, in the default column family.
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "services/controller/run_store.h"

namespace sae::controller {

absl::StatusOr<std::string> RunStore::LoadOrStoreSecret(const std::string& name,
                                                        const std::string& fresh) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::string key = absl::StrCat("secret/", name);
  std::string value;
  const rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), default_, key, &value);
  if (got.ok()) return value;
  if (!got.IsNotFound()) {
    return absl::InternalError(
        absl::StrCat("run store: cannot read the secret ", name, ": ", got.ToString()));
  }
  rocksdb::WriteOptions synced;
  synced.sync = true;
  const rocksdb::Status put = db_->Put(synced, default_, key, fresh);
  if (!put.ok()) {
    return absl::InternalError(
        absl::StrCat("run store: cannot store the secret ", name, ": ", put.ToString()));
  }
  return fresh;
}

}  // namespace sae::controller
