// RunStore's glue to RocksDB (internal to services/controller): statuses and the log.
#ifndef SAE_SERVICES_CONTROLLER_RUN_STORE_ROCKSDB_H_
#define SAE_SERVICES_CONTROLLER_RUN_STORE_ROCKSDB_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/env.h"
#include "rocksdb/status.h"

namespace sae::controller {

// "run store: <what>: <RocksDB's message>", with the absl code that fits (NotFound, DataLoss for
// corruption, Unavailable for busy, ResourceExhausted for a full disk, else Internal).
absl::Status FromRocks(const rocksdb::Status& status, absl::string_view what);

// A rocksdb::Logger that writes into the process's spdlog log (see run_store_rocksdb.cc).
std::shared_ptr<rocksdb::Logger> NewSpdlogLogger();

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_RUN_STORE_ROCKSDB_H_
