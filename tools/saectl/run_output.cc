#include "tools/saectl/run_output.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "services/common/run_state.h"
#include "tools/saectl/format.h"

namespace sae::saectl {
namespace {

using client::IsFinalState;
using client::RoleName;
using client::RunStateName;

std::string Metric(double value, const char* format) {
  return value == 0 ? "-" : absl::StrFormat(format, value);
}

}  // namespace

double ProgressPercent(const v1::Run& run) {
  if (run.total_tokens() <= 0) return 0;
  return std::clamp(
      100.0 * static_cast<double>(run.tokens()) / static_cast<double>(run.total_tokens()), 0.0,
      100.0);
}

std::vector<std::string> RunTableHeader(bool wide) {
  std::vector<std::string> header = {"RUN", "NAME", "STATE", "RESTARTS", "PROGRESS", "STEP", "AGE"};
  if (wide) {
    for (const char* column :
         {"WORKERS", "SAES", "LOSS", "L0", "EXPL.VAR", "CE.SCORE", "CHECKPOINT", "MESSAGE"}) {
      header.push_back(column);
    }
  }
  return header;
}

std::vector<std::string> RunTableRow(const v1::Run& run, bool wide, absl::Time now) {
  std::vector<std::string> row = {
      run.run_id(),
      run.name(),
      RunStateName(run.state()),
      absl::StrCat(run.generation()),
      absl::StrFormat("%.0f%%", ProgressPercent(run)),
      absl::StrCat(run.step(), "/", run.total_steps()),
      HumanAge(run.submit_time_unix_ms(), now),
  };
  if (wide) {
    row.push_back(absl::StrCat(run.activation_servers(), "+", run.trainers()));
    // SAEs the run trains (sweep:, hook_points:); the metrics that follow are the first one's.
    row.push_back(absl::StrCat(std::max(run.saes_size(), 1)));
    row.push_back(Metric(run.metrics().overall_loss(), "%.4g"));
    row.push_back(Metric(run.metrics().l0(), "%.3g"));
    row.push_back(Metric(run.metrics().explained_variance(), "%.3f"));
    // The newest evaluation's CE-loss score ("-" before the first, or without evaluations).
    row.push_back(run.has_latest_eval() ? Metric(run.latest_eval().ce_loss_score(), "%.4f") : "-");
    row.push_back(run.has_latest_checkpoint_step() ? absl::StrCat(run.latest_checkpoint_step())
                                                   : "-");
    row.push_back(run.message());
  }
  return row;
}

std::vector<std::string> CheckpointTableHeader() {
  return {"STEP", "TOKENS", "SIZE", "CHUNKS", "GENERATION", "FINAL", "CREATED"};
}

std::vector<std::string> CheckpointTableRow(const v1::CheckpointManifest& manifest) {
  return {absl::StrCat(manifest.step()),         absl::StrCat(manifest.tokens()),
          HumanBytes(manifest.total_bytes()),    absl::StrCat(manifest.chunk_count()),
          absl::StrCat(manifest.generation()),   manifest.final() ? "yes" : "no",
          FormatTime(manifest.created_unix_ms())};
}

std::string EventTypeName(v1::RunEvent::Type type) {
  std::string name = v1::RunEvent::Type_Name(type);
  return name.rfind("TYPE_", 0) == 0 ? name.substr(5) : name;
}

std::string EventLine(const v1::RunEvent& event) {
  return absl::StrFormat("%5d  %s  %-20s  %s", event.sequence(), FormatTime(event.time_unix_ms()),
                         EventTypeName(event.type()), event.message());
}

std::string ProgressLine(const v1::Run& run, int bar_width) {
  double percent = ProgressPercent(run);
  int filled = static_cast<int>(bar_width * percent / 100.0);
  const v1::TrainingMetrics& m = run.metrics();
  std::string line =
      absl::StrFormat("[%s%s] %3.0f%%  step %d/%d  %s/%s tok", std::string(filled, '#'),
                      std::string(bar_width - filled, '.'), percent, run.step(), run.total_steps(),
                      HumanCount(static_cast<double>(run.tokens())),
                      HumanCount(static_cast<double>(run.total_tokens())));
  if (run.step() > 0) {
    absl::StrAppendFormat(&line, "  loss %.4g  L0 %.3g  EV %.3f", m.overall_loss(), m.l0(),
                          m.explained_variance());
  }
  if (m.tokens_per_second() > 0) {
    absl::StrAppend(&line, "  ", HumanCount(m.tokens_per_second()), " tok/s");
  }
  absl::StrAppend(&line, "  ", RunStateName(run.state()));
  if (run.generation() > 0) absl::StrAppend(&line, " (gen ", run.generation(), ")");
  return line;
}

std::string SuccessSummary(const v1::Run& run) {
  const v1::TrainingMetrics& m = run.metrics();
  const double seconds =
      static_cast<double>(run.end_time_unix_ms() - run.start_time_unix_ms()) / 1000.0;
  std::string rates = absl::StrCat(HumanCount(m.tokens_per_second()), " tok/s training");
  if (seconds > 0) {
    rates = absl::StrCat(HumanCount(static_cast<double>(run.tokens()) / seconds),
                         " tok/s start to end, ", rates);
  }
  return absl::StrFormat(
      "run %s SUCCEEDED in %s: %d steps, %s tokens (%s); L0 %.3g, explained variance %.4f, dead "
      "features %d",
      run.run_id(), HumanDuration(seconds), run.step(),
      HumanCount(static_cast<double>(run.tokens())), rates, m.l0(), m.explained_variance(),
      m.dead_features());
}

// The newest evaluation in two lines: its step and scores, then the three CE losses.
std::string EvalDescription(const v1::EvalReport& eval) {
  std::string text = absl::StrFormat(
      "%s%sstep %d on %s: ce_loss_score %.4f  kl_div_score %.4f  explained_variance %.4f  l0 %.4g",
      eval.sae().empty() ? "" : absl::StrCat("SAE ", eval.sae(), ", "),
      eval.final() ? "final SAE, " : "", eval.step(), eval.server(), eval.ce_loss_score(),
      eval.kl_div_score(), eval.explained_variance(), eval.l0());
  const nlohmann::json results = nlohmann::json::parse(eval.results_json(), nullptr, false);
  const nlohmann::json* ce = results.is_object() && results.contains("model_performance_preservation")
                                 ? &results["model_performance_preservation"]
                                 : nullptr;
  auto number = [&](const char* key) {
    return ce != nullptr && ce->contains(key) && (*ce)[key].is_number() ? (*ce)[key].get<double>()
                                                                        : std::nan("");
  };
  absl::StrAppendFormat(&text, "\n%-17s CE loss %.4f clean, %.4f with the SAE, %.4f ablated", "",
                        number("ce_loss_without_sae"), number("ce_loss_with_sae"),
                        number("ce_loss_with_ablation"));
  return text;
}

std::string DescribeRun(const v1::Run& run, const std::vector<v1::CheckpointManifest>& checkpoints,
                        const std::vector<v1::RunEvent>& events, absl::Time now) {
  std::string out;
  auto field = [&](const char* name, const std::string& value) {
    absl::StrAppendFormat(&out, "%-17s %s\n", absl::StrCat(name, ":"), value);
  };
  field("Name", run.name());
  field("Run", run.run_id());
  field("State",
        RunStateName(run.state()) +
            (run.stop_requested() && !IsFinalState(run.state()) ? " (stop requested)" : ""));
  field("Message", run.message().empty() ? "-" : run.message());
  field("Generation", absl::StrCat(run.generation(), " (restarts ", run.generation(),
                                   " of at most ", run.max_restarts(), ")"));
  field("Gang", absl::StrCat(run.activation_servers(), " activation server",
                             run.activation_servers() == 1 ? "" : "s", ", ", run.trainers(),
                             " trainer", run.trainers() == 1 ? "" : "s"));
  field("Memory per trainer", run.memory_estimate_bytes() > 0
                                  ? absl::StrCat("about ", HumanBytes(run.memory_estimate_bytes()),
                                                 " (estimate; every trainer holds every SAE)")
                                  : std::string("not estimated"));
  field("Submitted", absl::StrCat(FormatTime(run.submit_time_unix_ms()), " (",
                                  HumanAge(run.submit_time_unix_ms(), now), " ago)"));
  field("Started", FormatTime(run.start_time_unix_ms()));
  field("Ended", FormatTime(run.end_time_unix_ms()));
  field("Progress",
        absl::StrFormat("step %d/%d, %d/%d tokens (%.1f%%)", run.step(), run.total_steps(),
                        run.tokens(), run.total_tokens(), ProgressPercent(run)));
  field("Tokens generated", absl::StrCat(run.tokens_generated()));
  field("Tokens skipped", absl::StrCat(run.tokens_skipped()));
  const v1::TrainingMetrics& m = run.metrics();
  if (run.has_metrics()) {
    field("Metrics",
          absl::StrFormat("overall_loss %.6g  mse_loss %.6g  l1_loss %.6g  ghost_grad_loss %.4g",
                          m.overall_loss(), m.mse_loss(), m.l1_loss(), m.ghost_grad_loss()));
    field("", absl::StrFormat("l0 %.4g  explained_variance %.4f  dead_features %d", m.l0(),
                              m.explained_variance(), m.dead_features()));
    field("", absl::StrFormat("mean_log10_feature_sparsity %s  learning_rate %.4g  "
                              "tokens/s %s",
                              m.has_mean_log10_feature_sparsity()
                                  ? absl::StrFormat("%.4g", m.mean_log10_feature_sparsity())
                                  : std::string("- (no feature-sampling window ended yet)"),
                              m.learning_rate(), HumanCount(m.tokens_per_second())));
  }
  if (run.saes_size() > 0) {
    // A run of many SAEs: each one's progress (Metrics above are the first SAE's).
    field("SAEs", absl::StrCat(run.saes_size(), " from one activation stream (saectl export ",
                               run.run_id(), " --sae NAME --out DIR exports one)"));
    for (const v1::SaeProgress& sae : run.saes()) {
      const v1::TrainingMetrics& sm = sae.metrics();
      std::string line = sae.step() > 0
                             ? absl::StrFormat("%s  step %d  l0 %.4g  mse_loss %.6g  "
                                               "explained_variance %.4f  dead_features %d",
                                               sae.name(), sae.step(), sm.l0(), sm.mse_loss(),
                                               sm.explained_variance(), sm.dead_features())
                             : absl::StrCat(sae.name(), "  (no step yet)");
      if (sae.has_latest_eval()) {
        absl::StrAppendFormat(&line, "  eval at step %d: CE-loss score %.4g, KL score %.4g",
                              sae.latest_eval().step(), sae.latest_eval().ce_loss_score(),
                              sae.latest_eval().kl_div_score());
      }
      field("", line);
    }
  }
  field("Evaluation", run.has_latest_eval() ? EvalDescription(run.latest_eval())
                                            : std::string("- (none yet)"));
  field("Final SAE", run.has_final_checkpoint_step()
                         ? absl::StrCat("checkpoint at step ", run.final_checkpoint_step(),
                                        " (saectl export ", run.run_id(), " --out DIR)")
                         : "-");
  field("Features", run.has_features_step()
                        ? absl::StrCat("dashboards of the SAE at step ", run.features_step(), ", ",
                                       HumanBytes(run.features_bytes()))
                        : absl::StrCat("- (saectl features ", run.run_id(), " makes them)"));

  absl::StrAppend(&out, "\nWorkers", run.workers().empty() ? ": none\n" : ":\n");
  if (!run.workers().empty()) {
    std::vector<std::vector<std::string>> rows = {{"ROLE", "RANK", "WORKER", "ADDRESS", "HOST"}};
    for (const v1::RunWorker& w : run.workers()) {
      rows.push_back(
          {RoleName(w.role()), absl::StrCat(w.rank()), w.worker_id(), w.address(), w.hostname()});
    }
    for (absl::string_view line : absl::StrSplit(FormatTable(rows), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  if (!run.shards().empty()) {
    absl::StrAppend(&out, "\nShards:\n");
    std::vector<std::vector<std::string>> rows = {{"SHARD", "TOKENS GENERATED", "CURSOR"}};
    for (const v1::ShardProgress& s : run.shards()) {
      rows.push_back({absl::StrCat(s.shard_index()), absl::StrCat(s.tokens_generated()),
                      s.cursor().empty() ? "start" : absl::StrCat(s.cursor().size(), " bytes")});
    }
    for (absl::string_view line : absl::StrSplit(FormatTable(rows), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  absl::StrAppend(&out, "\nCheckpoints", checkpoints.empty() ? ": none\n" : ":\n");
  if (!checkpoints.empty()) {
    std::vector<std::vector<std::string>> rows = {CheckpointTableHeader()};
    for (const v1::CheckpointManifest& c : checkpoints) rows.push_back(CheckpointTableRow(c));
    for (absl::string_view line : absl::StrSplit(FormatTable(rows), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  absl::StrAppend(&out, "\nState history:\n");
  {
    std::vector<std::vector<std::string>> rows = {{"TIME", "STATE", "GENERATION", "REASON"}};
    for (const v1::StateTransition& t : run.history()) {
      rows.push_back({FormatTime(t.time_unix_ms()), RunStateName(t.state()),
                      absl::StrCat(t.generation()), t.reason()});
    }
    for (absl::string_view line : absl::StrSplit(FormatTable(rows), '\n', absl::SkipEmpty())) {
      absl::StrAppend(&out, "  ", line, "\n");
    }
  }
  std::string last_error = "-";
  for (const v1::RunEvent& event : events) {
    if (event.type() == v1::RunEvent::TYPE_WORKER_ERROR ||
        event.type() == v1::RunEvent::TYPE_WORKER_LOST) {
      last_error = absl::StrCat(FormatTime(event.time_unix_ms()), "  ", event.message());
    }
  }
  if (run.state() == v1::RUN_STATE_FAILED) last_error = run.message();
  absl::StrAppend(&out, "\nLast error:        ", last_error, "\n");
  absl::StrAppend(&out, "\nConfig:\n");
  for (absl::string_view line :
       absl::StrSplit(absl::StripTrailingAsciiWhitespace(run.config_yaml()), '\n')) {
    absl::StrAppend(&out, line.empty() ? "" : "  ", line, "\n");
  }
  return out;
}

}  // namespace sae::saectl
