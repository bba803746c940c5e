#include "services/controller/console/console_api.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/util/json_util.h"

namespace sae::controller {
namespace {

using nlohmann::json;

int64_t NowMillis() { return absl::ToUnixMillis(absl::Now()); }

bool IsEvalEvent(const v1::RunEvent& event) {
  const google::protobuf::EnumValueDescriptor* type =
      v1::RunEvent::Type_descriptor()->FindValueByNumber(event.type());
  // EVAL_FAILED carries no results (its numbers are proto3 defaults).
  return type != nullptr && absl::StrContains(type->name(), "EVAL") &&
         !absl::StrContains(type->name(), "FAILED");
}

// A TrainingMetrics field as a JSON number, or null when an optional field is absent.
json FieldValue(const v1::TrainingMetrics& metrics,
                const google::protobuf::FieldDescriptor* field) {
  const google::protobuf::Reflection* reflection = metrics.GetReflection();
  if (field->has_presence() && !reflection->HasField(metrics, field)) return nullptr;
  switch (field->cpp_type()) {
    case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
      return reflection->GetDouble(metrics, field);
    case google::protobuf::FieldDescriptor::CPPTYPE_FLOAT:
      return reflection->GetFloat(metrics, field);
    case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
      return reflection->GetInt64(metrics, field);
    case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
      return reflection->GetInt32(metrics, field);
    case google::protobuf::FieldDescriptor::CPPTYPE_UINT64:
      return reflection->GetUInt64(metrics, field);
    case google::protobuf::FieldDescriptor::CPPTYPE_UINT32:
      return reflection->GetUInt32(metrics, field);
    default:
      return nullptr;
  }
}

// A non-finite double (a NaN loss) is not JSON: it becomes null, a gap in the chart.
json Finite(json value) {
  if (value.is_number_float() && !std::isfinite(value.get<double>())) return nullptr;
  return value;
}

}  // namespace

json ProtoJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(message, &text, options);
  return json::parse(text, nullptr, false);
}

ConsoleApi::ConsoleApi(Controller* controller, ProgressHistory* history)
    : controller_(controller), history_(history) {}

json ConsoleApi::LatestEval(const std::string& run_id, uint64_t last_sequence) {
  std::lock_guard<std::mutex> lock(mutex_);
  EvalScan& scan = evals_[run_id];
  while (scan.scanned < last_sequence) {
    absl::StatusOr<std::vector<v1::RunEvent>> events =
        controller_->ReadEvents(run_id, scan.scanned, 1000);
    if (!events.ok() || events->empty()) break;
    for (const v1::RunEvent& event : *events) {
      if (IsEvalEvent(event)) scan.latest = ProtoJson(event);
      scan.scanned = event.sequence();
    }
  }
  return scan.latest;
}

json ConsoleApi::Runs(const std::vector<std::string>& states) {
  v1::ListRunsRequest request;
  for (const std::string& name : states) {
    v1::RunState state;
    if (v1::RunState_Parse(name, &state) ||
        v1::RunState_Parse(absl::StrCat("RUN_STATE_", name), &state)) {
      request.add_states(state);
    }
  }
  json runs = json::array();
  if (!states.empty() && request.states().empty()) {
    return {{"runs", runs}, {"now_unix_ms", NowMillis()}};
  }
  for (v1::Run& run : controller_->ListRuns(request)) {
    run.clear_config_yaml();
    run.clear_history();
    json entry = ProtoJson(run);
    entry["latest_eval"] = LatestEval(run.run_id(), run.last_event_sequence());
    runs.push_back(std::move(entry));
  }
  return {{"runs", std::move(runs)}, {"now_unix_ms", NowMillis()}};
}

absl::StatusOr<json> ConsoleApi::Run(const std::string& run_id) {
  absl::StatusOr<v1::Run> run = controller_->GetRun(run_id);
  if (!run.ok()) return run.status();
  json checkpoints = json::array();
  absl::StatusOr<std::vector<v1::CheckpointManifest>> manifests =
      controller_->ListCheckpoints(run_id);
  if (manifests.ok()) {
    for (const v1::CheckpointManifest& manifest : *manifests) {
      json entry = ProtoJson(manifest);
      entry.erase("chunks");
      entry.erase("upload_id");
      checkpoints.push_back(std::move(entry));
    }
  }
  json workers = json::array();
  for (const v1::Worker& worker : controller_->ListWorkers()) {
    if (worker.run_id() == run_id) workers.push_back(ProtoJson(worker));
  }
  json latest_eval = LatestEval(run_id, run->last_event_sequence());
  return json{{"run", ProtoJson(*run)},
              {"checkpoints", std::move(checkpoints)},
              {"workers", std::move(workers)},
              {"latest_eval", std::move(latest_eval)},
              {"now_unix_ms", NowMillis()}};
}

absl::StatusOr<json> ConsoleApi::History(const std::string& run_id, const std::string& sae) {
  absl::StatusOr<v1::Run> run = controller_->GetRun(run_id);
  if (!run.ok()) return run.status();
  json names = json::array();
  for (const v1::SaeProgress& progress : run->saes()) names.push_back(progress.name());
  if (!sae.empty() && std::find(names.begin(), names.end(), sae) == names.end()) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no SAE named '", sae,
                                            "'; its SAEs: ", names.empty() ? "none (one SAE)"
                                                                           : names.dump()));
  }
  absl::StatusOr<std::vector<v1::ProgressPoint>> points = history_->Read(run_id);
  if (!points.ok()) return points.status();
  // The metrics each point charts: the run's, or the chosen SAE's (empty where it is missing).
  std::vector<const v1::TrainingMetrics*> rows;
  for (const v1::ProgressPoint& point : *points) {
    const v1::TrainingMetrics* row = &point.metrics();
    if (!sae.empty()) {
      row = &v1::TrainingMetrics::default_instance();
      for (const v1::SaePoint& entry : point.saes()) {
        if (entry.name() == sae) row = &entry.metrics();
      }
    }
    rows.push_back(row);
  }
  json columns = json::object();
  json time = json::array(), generation = json::array();
  for (const v1::ProgressPoint& point : *points) {
    time.push_back(point.time_unix_ms());
    generation.push_back(point.generation());
  }
  columns["time_unix_ms"] = std::move(time);
  columns["generation"] = std::move(generation);
  const google::protobuf::Descriptor* descriptor = v1::TrainingMetrics::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) continue;
    json column = json::array();
    for (size_t i = 0; i < points->size(); ++i) {
      const bool missing = rows[i] == &v1::TrainingMetrics::default_instance();
      column.push_back(missing ? json(nullptr) : Finite(FieldValue(*rows[i], field)));
    }
    columns[field->name()] = std::move(column);
  }
  if (!sae.empty()) {  // the x axes stay the run's
    json step = json::array(), tokens = json::array();
    for (const v1::ProgressPoint& point : *points) {
      step.push_back(point.metrics().step());
      tokens.push_back(point.metrics().tokens());
    }
    columns["step"] = std::move(step);
    columns["tokens"] = std::move(tokens);
  }
  return json{{"points", points->size()},
              {"capacity", ProgressHistory::kDefaultCapacity},
              {"saes", std::move(names)},
              {"sae", sae},
              {"columns", std::move(columns)}};
}

absl::StatusOr<json> ConsoleApi::Events(const std::string& run_id, uint64_t after_sequence,
                                        size_t max_events) {
  absl::StatusOr<std::vector<v1::RunEvent>> events =
      controller_->ReadEvents(run_id, after_sequence, max_events);
  if (!events.ok()) return events.status();
  json list = json::array();
  uint64_t last = after_sequence;
  for (const v1::RunEvent& event : *events) {
    list.push_back(ProtoJson(event));
    last = std::max<uint64_t>(last, event.sequence());
  }
  return json{{"events", std::move(list)}, {"last_sequence", last}};
}

json ConsoleApi::Workers() {
  const int64_t now = NowMillis();
  json workers = json::array();
  for (const v1::Worker& worker : controller_->ListWorkers()) {
    json entry = ProtoJson(worker);
    entry["lease_age_ms"] = now - worker.last_heartbeat_unix_ms();
    entry["registered_age_ms"] = now - worker.register_time_unix_ms();
    workers.push_back(std::move(entry));
  }
  return {{"workers", std::move(workers)}, {"now_unix_ms", now}};
}

}  // namespace sae::controller
