#include "services/controller/run_store_rocksdb.h"

#include <cstdarg>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/controller/run_store.h"
#include "spdlog/spdlog.h"

namespace sae::controller {
namespace {

// RocksDB's own log, into the controller's: warnings and errors as such, the rest at debug
// level. RocksDB's default (a LOG file in the data dir) cannot be written once that disk is
// full, and the Debian build of RocksDB 7.8 aborts the process (an assertion) when it appends
// to a log file whose previous write failed: with this logger a full disk fails writes, as it
// should, instead of killing the controller.
class SpdlogLogger : public rocksdb::Logger {
 public:
  SpdlogLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::DEBUG_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    spdlog::level::level_enum to = spdlog::level::debug;
    if (level >= rocksdb::InfoLogLevel::ERROR_LEVEL) {
      to = spdlog::level::err;
    } else if (level == rocksdb::InfoLogLevel::WARN_LEVEL) {
      to = spdlog::level::warn;
    }
    if (!spdlog::should_log(to)) return;
    char line[1024];
    std::vsnprintf(line, sizeof(line), format, ap);
    spdlog::log(to, "rocksdb: {}", line);
  }
};

}  // namespace

absl::Status FromRocks(const rocksdb::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("run store: ", what, ": ", status.ToString());
  if (status.IsNotFound()) return absl::NotFoundError(message);
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsBusy() || status.IsTimedOut() || status.IsTryAgain()) {
    return absl::UnavailableError(message);
  }
  if (status.IsNoSpace()) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

std::shared_ptr<rocksdb::Logger> NewSpdlogLogger() { return std::make_shared<SpdlogLogger>(); }

absl::Status RunStore::Rocks(const rocksdb::Status& status, absl::string_view what) const {
  absl::Status converted = FromRocks(status, what);
  if (absl::IsResourceExhausted(converted)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        converted.message(), " (the file system of the data dir ", dir_,
        " is full: free space there or move --data-dir to a larger disk; the controller takes "
        "writes again by itself, without a restart, once at least 64 MiB are free)"));
  }
  if (absl::IsDataLoss(converted)) {
    return absl::DataLossError(absl::StrCat(
        converted.message(), " (a checksum in the data dir ", dir_,
        " does not match: the data dir is damaged; stop the controller and restore the data "
        "dir from a backup)"));
  }
  return converted;
}

}  // namespace sae::controller
