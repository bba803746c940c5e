#include "services/controller/controller_internal.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sae::controller::internal {

std::string RandomSuffix(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string suffix;
  for (size_t i = 0; i < length; ++i) suffix.push_back(kAlphabet[pick(engine)]);
  return suffix;
}

std::string HumanBytes(int64_t bytes) {
  double value = static_cast<double>(bytes);
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1 << 20)) return absl::StrFormat("%.1f KiB", value / 1024.0);
  if (bytes < (1 << 30)) return absl::StrFormat("%.1f MiB", value / 1048576.0);
  return absl::StrFormat("%.2f GiB", value / 1073741824.0);
}

std::string WorkerLabel(const v1::RunWorker& worker) {
  std::string slot = worker.role() == v1::WORKER_ROLE_TRAINER
                         ? absl::StrCat("trainer rank ", worker.rank())
                         : absl::StrCat("activation server shard ", worker.rank());
  return absl::StrCat(slot, " (", worker.worker_id(), " at ", worker.address(), ")");
}

v1::RunWorker RunWorkerOf(const v1::Worker& worker) {
  v1::RunWorker out;
  out.set_worker_id(worker.worker_id());
  out.set_role(worker.role());
  out.set_rank(worker.rank());
  out.set_address(worker.address());
  out.set_hostname(worker.hostname());
  return out;
}

}  // namespace sae::controller::internal
