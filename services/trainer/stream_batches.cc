#include "services/trainer/stream_batches.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "core/data/shard_cursor.h"
#include "core/wire/cursor_text.h"

namespace sae::trainer {

// Every rank's furthest cursor per server, gathered with one all-reduce (each rank fills only
// its own slot), reduced to the furthest per server. Collective: every rank calls it at the
// same step.
absl::StatusOr<std::vector<std::string>> GatherCursors(
    const std::vector<std::unique_ptr<ActivationStreamReader>>& readers,
    sparse::Collective* group) {
  constexpr int64_t kSlot = 64;  // bytes per cursor; ToBytes is about 20
  const int world = group != nullptr ? group->world_size() : 1;
  const int rank = group != nullptr ? group->rank() : 0;
  const int64_t servers = static_cast<int64_t>(readers.size());
  at::Tensor slots = at::zeros({world, servers, kSlot + 1}, at::kInt);
  {
    auto mine = slots.accessor<int32_t, 3>()[rank];
    for (int64_t s = 0; s < servers; ++s) {
      const std::string bytes = readers[s]->furthest_cursor();
      if (static_cast<int64_t>(bytes.size()) > kSlot) {
        return absl::InternalError("a shard cursor is longer than 64 bytes");
      }
      mine[s][0] = static_cast<int32_t>(bytes.size());
      for (int64_t i = 0; i < static_cast<int64_t>(bytes.size()); ++i) {
        mine[s][i + 1] = static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
      }
    }
  }
  if (world > 1) SAE_RETURN_IF_ERROR(group->AllReduceSum(slots));
  std::vector<std::string> furthest(servers);
  const auto all = slots.accessor<int32_t, 3>();
  for (int64_t s = 0; s < servers; ++s) {
    std::optional<data::ShardCursor> best;
    for (int r = 0; r < world; ++r) {
      std::string bytes(static_cast<size_t>(all[r][s][0]), '\0');
      for (int64_t i = 0; i < static_cast<int64_t>(bytes.size()); ++i) {
        bytes[static_cast<size_t>(i)] = static_cast<char>(all[r][s][i + 1]);
      }
      if (bytes.empty()) continue;
      SAE_ASSIGN_OR_RETURN(data::ShardCursor cursor, data::ShardCursor::FromBytes(bytes));
      if (!best || cursor.IsAfter(*best)) best = cursor;
    }
    furthest[s] = best ? wire::CursorToHex(*best) : "";
  }
  return furthest;
}

// The cursors a checkpoint recorded (kStreamCursorsKey), as ShardCursor bytes.
absl::StatusOr<std::vector<std::string>> CheckpointCursors(
    const std::map<std::string, std::string>& extra, const std::string& dir) {
  std::vector<std::string> cursors;
  auto found = extra.find(kStreamCursorsKey);
  if (found == extra.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, " is not a checkpoint of a distributed run (no ", kStreamCursorsKey, ")"));
  }
  nlohmann::json list = nlohmann::json::parse(found->second, nullptr, false);
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": ", kStreamCursorsKey, " is not a list"));
  }
  for (const nlohmann::json& hex : list) {
    if (!hex.is_string() || hex.get<std::string>().empty()) continue;
    SAE_ASSIGN_OR_RETURN(data::ShardCursor cursor, wire::CursorFromHex(hex.get<std::string>()));
    cursors.push_back(cursor.ToBytes());
  }
  return cursors;
}

// One JSON line per trained batch (DistributedTrainingOptions::batch_log).
nlohmann::json BatchRecord(const StreamedBatch& batch, int rank, const sparse::StepMetrics& m) {
  at::Tensor values = batch.rows.to(at::kDouble);
  return {{"rank", rank},
          {"step", m.step},
          {"server", batch.server},
          {"incarnation", absl::StrCat(batch.incarnation)},
          {"sequence", batch.sequence},
          {"offset", batch.stream_offset},
          {"rows", batch.rows.size(0)},
          {"resent", batch.resent},
          {"sum", values.sum().item<double>()},
          {"sum_sq", values.pow(2).sum().item<double>()},
          {"overall_loss", m.overall_loss},
          {"mse_loss", m.mse_loss},
          {"l0", m.l0}};
}

}  // namespace sae::trainer
