#include "core/features/feature_output.h"

#include <unistd.h>

#include <ATen/Parallel.h>

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/features/dashboard_assets.h"
#include "core/util/files.h"
#include "core/util/status.h"

namespace sae::features {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Four significant digits: the dashboard's precision, and a third of the file size of float's.
double Round(double v) {
  if (v == 0 || !std::isfinite(v)) return v;
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.4g", v);
  return std::strtod(buffer, nullptr);
}

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Decoded token strings, decoded once for every id that the output can name (the pass's tokens
// and the logit tables), then read-only, so records are built on several threads. A token may
// be part of a UTF-8 character: its bytes as they are (JSON output replaces invalid UTF-8 with
// U+FFFD).
class TokenStrings {
 public:
  TokenStrings(const tokenizer::Gpt2Tokenizer* tokenizer, const FeatureReport& report,
               const at::Tensor& contexts) {
    std::vector<int32_t> ids;
    const int64_t* t = contexts.data_ptr<int64_t>();
    for (int64_t i = 0; i < contexts.numel(); ++i) ids.push_back(static_cast<int32_t>(t[i]));
    for (const auto& list : {report.raised, report.lowered}) {
      for (const auto& row : list) {
        for (const TokenValue& tv : row) ids.push_back(tv.token);
      }
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    for (int32_t id : ids) {
      std::string s;
      const int32_t one[] = {id};
      absl::StatusOr<std::string> decoded =
          tokenizer != nullptr ? tokenizer->Decode(one) : absl::NotFoundError("");
      std::string text = decoded.ok() ? *decoded : absl::StrCat("<", id, ">");
      quoted_.emplace(id, Dump(json(text)));
      strings_.emplace(id, std::move(text));
    }
  }
  // As a JSON string literal.
  const std::string& Quoted(int32_t id) const {
    static const std::string kUnknown = "\"<?>\"";
    auto it = quoted_.find(id);
    return it != quoted_.end() ? it->second : kUnknown;
  }
  const std::string& Get(int32_t id) const {
    static const std::string kUnknown = "<?>";
    auto it = strings_.find(id);
    return it != strings_.end() ? it->second : kUnknown;
  }
  const std::map<int32_t, std::string>& all() const { return strings_; }

 private:
  std::map<int32_t, std::string> strings_;
  std::map<int32_t, std::string> quoted_;
};

// A number with four significant digits ("%.4g": valid JSON), exact zeros as 0.
void AppendNumber(std::string* out, double v) {
  if (v == 0) {
    out->push_back('0');
    return;
  }
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char buffer[32];
  const int n = std::snprintf(buffer, sizeof(buffer), "%.4g", v);
  out->append(buffer, static_cast<size_t>(n));
}

// An example: the JSONL's object, or the dashboard's compact array (data/chunk-*.js):
// [context, position, window_start, activation, token_ids, activations].
void AppendExample(std::string* o, const Example& e, const at::Tensor& contexts,
                   const TokenStrings& strings, bool compact) {
  const int64_t* row = contexts.data_ptr<int64_t>() + e.context * contexts.size(1);
  auto ids = [&] {
    o->push_back('[');
    for (size_t i = 0; i < e.window.size(); ++i) {
      if (i > 0) o->push_back(',');
      absl::StrAppend(o, row[e.window_start + static_cast<int64_t>(i)]);
    }
    o->push_back(']');
  };
  auto acts = [&] {
    o->push_back('[');
    for (size_t i = 0; i < e.window.size(); ++i) {
      if (i > 0) o->push_back(',');
      AppendNumber(o, e.window[i]);
    }
    o->push_back(']');
  };
  if (compact) {
    absl::StrAppend(o, "[", e.context, ",", e.position, ",", e.window_start, ",");
    AppendNumber(o, e.activation);
    o->push_back(',');
    ids();
    o->push_back(',');
    acts();
    o->push_back(']');
    return;
  }
  absl::StrAppend(o, "{\"context\":", e.context, ",\"position\":", e.position,
                  ",\"activation\":");
  AppendNumber(o, e.activation);
  absl::StrAppend(o, ",\"window_start\":", e.window_start, ",\"token_ids\":");
  ids();
  o->append(",\"activations\":");
  acts();
  o->append(",\"tokens\":[");
  for (size_t i = 0; i < e.window.size(); ++i) {
    if (i > 0) o->push_back(',');
    o->append(strings.Quoted(static_cast<int32_t>(row[e.window_start + static_cast<int64_t>(i)])));
  }
  o->append("]}");
}

// The record as one line of JSON. `compact`: the dashboard's form (examples as arrays, without
// token strings: the chunks share data/vocab.js).
std::string RecordString(const FeatureReport& report, size_t i, const at::Tensor& contexts,
                         const TokenStrings& strings, bool compact) {
  const FeatureStats& s = report.stats[i];
  std::string o;
  o.reserve(compact ? 12000 : 24000);
  absl::StrAppend(&o, "{\"feature\":", s.feature, ",\"dead\":", s.count == 0 ? "true" : "false",
                  ",\"count\":", s.count, ",\"frequency\":");
  AppendNumber(&o, report.tokens > 0 ? static_cast<double>(s.count) / report.tokens : 0.0);
  o.append(",\"max_activation\":");
  AppendNumber(&o, s.max);
  o.append(",\"min_activation\":");
  AppendNumber(&o, s.min);
  o.append(",\"mean_activation\":");
  AppendNumber(&o, s.count > 0 ? s.sum / s.count : 0.0);
  // Histogram: the bins from the first to the last non-empty one; edges clipped to [min, max].
  int first = -1, last = -1;
  for (int b = 0; b < kHistogramBins; ++b) {
    if (s.histogram[b] > 0) {
      if (first < 0) first = b;
      last = b;
    }
  }
  o.append(",\"histogram\":{\"edges\":[");
  if (first >= 0) {
    for (int b = first; b <= last; ++b) {
      AppendNumber(&o, b == first ? std::max<double>(HistogramBinLower(b), s.min)
                                  : HistogramBinLower(b));
      o.push_back(',');
    }
    AppendNumber(&o, std::min<double>(HistogramBinUpper(last), s.max));
  }
  o.append("],\"counts\":[");
  if (first >= 0) {
    for (int b = first; b <= last; ++b) absl::StrAppend(&o, b > first ? "," : "", s.histogram[b]);
  }
  o.append("]},\"top_examples\":[");
  for (size_t k = 0; k < s.top.size(); ++k) {
    if (k > 0) o.push_back(',');
    AppendExample(&o, s.top[k], contexts, strings, compact);
  }
  o.append("],\"interval_samples\":[");
  for (size_t g = 0; g < s.intervals.size(); ++g) {
    const IntervalSample& in = s.intervals[g];
    o.append(g > 0 ? ",{\"lower\":" : "{\"lower\":");
    AppendNumber(&o, in.lower);
    o.append(",\"upper\":");
    AppendNumber(&o, in.upper);
    absl::StrAppend(&o, ",\"count\":", in.count, ",\"fraction\":");
    AppendNumber(&o, static_cast<double>(in.count) / s.count);
    o.append(",\"examples\":[");
    for (size_t k = 0; k < in.examples.size(); ++k) {
      if (k > 0) o.push_back(',');
      AppendExample(&o, in.examples[k], contexts, strings, compact);
    }
    o.append("]}");
  }
  o.append("],\"logits\":");
  if (report.has_logits) {
    auto table = [&](const std::vector<TokenValue>& list) {
      o.push_back('[');
      for (size_t k = 0; k < list.size(); ++k) {
        absl::StrAppend(&o, k > 0 ? "," : "", "{\"token_id\":", list[k].token, ",\"token\":",
                        strings.Quoted(list[k].token), ",\"value\":");
        AppendNumber(&o, list[k].value);
        o.push_back('}');
      }
      o.push_back(']');
    };
    o.append("{\"raised\":");
    table(report.raised[i]);
    o.append(",\"lowered\":");
    table(report.lowered[i]);
    o.push_back('}');
  } else {
    o.append("null");
  }
  o.append(",\"neighbours\":[");
  for (size_t k = 0; k < report.neighbours[i].size(); ++k) {
    absl::StrAppend(&o, k > 0 ? "," : "", "{\"feature\":", report.neighbours[i][k].first,
                    ",\"cosine\":");
    AppendNumber(&o, report.neighbours[i][k].second);
    o.push_back('}');
  }
  o.append("]}");
  return o;
}

// A few tokens a feature is about, for the index's search: the peak tokens of its top contexts
// and the tokens its direction raises most.
std::string SearchText(const FeatureReport& report, size_t i, const at::Tensor& contexts,
                       const TokenStrings& strings) {
  std::set<std::string> seen;
  std::string out;
  auto add = [&](int32_t id) {
    const std::string& s = strings.Get(id);
    if (seen.insert(s).second && seen.size() <= 8) {
      if (!out.empty()) out += "\x1f";
      out += s;
    }
  };
  const FeatureStats& st = report.stats[i];
  const int64_t T = contexts.size(1);
  for (size_t k = 0; k < st.top.size() && k < 5; ++k) {
    add(static_cast<int32_t>(contexts.data_ptr<int64_t>()[st.top[k].context * T + st.top[k].position]));
  }
  if (report.has_logits) {
    for (size_t k = 0; k < report.raised[i].size() && k < 3; ++k) add(report.raised[i][k].token);
  }
  return out;
}

class Folder {
 public:
  explicit Folder(std::string path) : path_(std::move(path)) {}
  absl::Status Write(const std::string& name, std::string_view contents) {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.close();
    if (!out) return ErrnoStatus("writing", file, errno);
    return absl::OkStatus();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

absl::Status WriteAll(Folder& dir, const FeatureReport& report, const at::Tensor& contexts_in,
                      const tokenizer::Gpt2Tokenizer* tokenizer, json summary,
                      const std::function<bool()>& stop) {
  const at::Tensor contexts = contexts_in.to(at::kLong).contiguous();
  const TokenStrings strings(tokenizer, report, contexts);
  const size_t F = report.stats.size();

  // summary.json.
  int64_t dead = 0;
  for (const FeatureStats& s : report.stats) dead += s.count == 0 ? 1 : 0;
  summary["format_version"] = kFormatVersion;
  summary["contexts"] = report.contexts;
  summary["context_size"] = report.context_size;
  summary["tokens"] = report.tokens;
  summary["features"] = F;
  summary["dead_features"] = dead;
  summary["has_logits"] = report.has_logits;
  if (!report.has_logits) summary["logits_note"] = report.logits_note;
  summary["features_per_chunk"] = kFeaturesPerChunk;
  summary["seconds"] = {{"pass", Round(report.pass_seconds)},
                        {"logits", Round(report.logits_seconds)},
                        {"neighbours", Round(report.neighbours_seconds)}};
  SAE_RETURN_IF_ERROR(dir.Write("summary.json", summary.dump(2, ' ', false,
                                                             json::error_handler_t::replace) +
                                                    "\n"));

  // The dashboard's assets.
  SAE_RETURN_IF_ERROR(MakeDirectories(dir.path() + "/data"));
  SAE_RETURN_IF_ERROR(MakeDirectories(dir.path() + "/assets"));
  for (const DashboardAsset& asset : DashboardAssets()) {
    SAE_RETURN_IF_ERROR(dir.Write(std::string(asset.path), asset.contents));
  }

  // features.jsonl and data/chunk-*.js, a chunk of records at a time, each chunk's records
  // built on LibTorch's threads.
  const std::string jsonl = dir.path() + "/features.jsonl";
  std::ofstream out(jsonl, std::ios::binary | std::ios::trunc);
  json rows = json::array();
  for (size_t lo = 0, chunk = 0; lo < F; lo += kFeaturesPerChunk, ++chunk) {
    if (stop && stop()) return absl::CancelledError("interrupted");
    const size_t hi = std::min(F, lo + static_cast<size_t>(kFeaturesPerChunk));
    std::vector<std::string> lines(hi - lo), compact(hi - lo), search(hi - lo);
    at::parallel_for(static_cast<int64_t>(lo), static_cast<int64_t>(hi), 8,
                     [&](int64_t begin, int64_t end) {
                       for (int64_t i = begin; i < end; ++i) {
                         const size_t k = static_cast<size_t>(i) - lo;
                         lines[k] = RecordString(report, i, contexts, strings, false);
                         compact[k] = RecordString(report, i, contexts, strings, true);
                         search[k] = SearchText(report, i, contexts, strings);
                       }
                     });
    std::string records = absl::StrCat("SAE_DASH.chunk(", chunk, ",[");
    for (size_t i = lo; i < hi; ++i) {
      out << lines[i - lo] << '\n';
      absl::StrAppend(&records, i > lo ? "," : "", compact[i - lo]);
      const FeatureStats& s = report.stats[i];
      const double freq = report.tokens > 0 ? static_cast<double>(s.count) / report.tokens : 0;
      rows.push_back(json::array({s.feature, s.count, Round(freq), Round(s.max),
                                  s.count > 0 ? Round(s.sum / s.count) : 0.0, chunk,
                                  std::move(search[i - lo])}));
    }
    absl::StrAppend(&records, "]);\n");
    if (!out) return ErrnoStatus("writing", jsonl, errno);
    SAE_RETURN_IF_ERROR(dir.Write(absl::StrFormat("data/chunk-%05d.js", chunk), records));
  }
  out.close();
  if (!out) return ErrnoStatus("writing", jsonl, errno);

  json index = {{"summary", summary},
                {"columns", {"feature", "count", "frequency", "max", "mean", "chunk", "search"}},
                {"rows", std::move(rows)}};
  SAE_RETURN_IF_ERROR(dir.Write("data/index.js", absl::StrCat("SAE_DASH.index(", Dump(index),
                                                              ");\n")));
  json vocab = json::object();
  for (const auto& [id, s] : strings.all()) vocab[std::to_string(id)] = s;
  return dir.Write("data/vocab.js", absl::StrCat("SAE_DASH.vocab(", Dump(vocab), ");\n"));
}

}  // namespace

absl::Status CheckOutputFolder(const std::string& out_dir) {
  std::error_code error;
  if (!fs::exists(out_dir, error)) return absl::OkStatus();
  if (!fs::is_directory(out_dir, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat("--out ", out_dir, " exists and is not a folder; give another --out"));
  }
  if (fs::is_empty(out_dir, error)) return absl::OkStatus();
  const absl::StatusOr<std::string> summary = ReadFile(out_dir + "/summary.json");
  if (summary.ok()) {
    const json j = json::parse(*summary, nullptr, false);
    if (j.is_object() && j.contains("format_version")) return absl::OkStatus();
  }
  return absl::AlreadyExistsError(absl::StrCat(
      "--out ", out_dir, " is a folder that saectl features did not write (no summary.json); "
      "it would be replaced: give a new or empty folder"));
}

nlohmann::json FeatureRecord(const FeatureReport& report, size_t i, const at::Tensor& contexts,
                             const tokenizer::Gpt2Tokenizer* tokenizer) {
  const at::Tensor c = contexts.to(at::kLong).contiguous();
  const TokenStrings strings(tokenizer, report, c);
  return json::parse(RecordString(report, i, c, strings, false));
}

absl::Status WriteFeatureOutput(const std::string& out_dir, const FeatureReport& report,
                                const at::Tensor& contexts,
                                const tokenizer::Gpt2Tokenizer* tokenizer, json summary,
                                const std::function<bool()>& stop) {
  std::error_code error;
  fs::path target = fs::absolute(out_dir, error);
  if (error) return absl::InvalidArgumentError(absl::StrCat("--out ", out_dir, ": ", error.message()));
  target = target.lexically_normal();
  if (target.filename().empty()) target = target.parent_path();
  SAE_RETURN_IF_ERROR(CheckOutputFolder(target.string()));
  SAE_RETURN_IF_ERROR(MakeDirectories(target.parent_path().string()));
  const std::string tmp = absl::StrCat(target.string(), ".tmp-", ::getpid());
  fs::remove_all(tmp, error);
  SAE_RETURN_IF_ERROR(MakeDirectories(tmp));
  Folder folder(tmp);
  absl::Status status = WriteAll(folder, report, contexts, tokenizer, std::move(summary), stop);
  if (!status.ok()) {
    fs::remove_all(tmp, error);
    return status;
  }
  // Replace a previous output: move it aside, move the new one in, remove the old one.
  const std::string old = absl::StrCat(target.string(), ".old-", ::getpid());
  const bool had_old = fs::exists(target);
  if (had_old) {
    fs::rename(target, old, error);
    if (error) {
      fs::remove_all(tmp, error);
      return absl::InternalError(absl::StrCat("could not move the previous ", target.string(),
                                              " aside: ", error.message()));
    }
  }
  fs::rename(tmp, target, error);
  if (error) {
    const std::string message = error.message();
    if (had_old) fs::rename(old, target, error);
    fs::remove_all(tmp, error);
    return absl::InternalError(
        absl::StrCat("could not rename ", tmp, " to ", target.string(), ": ", message));
  }
  if (had_old) fs::remove_all(old, error);
  return absl::OkStatus();
}

}  // namespace sae::features
