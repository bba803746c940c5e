#include "services/controller/console/console_routes.h"

#include <httplib.h>

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/util/status.h"
#include "services/common/sha256.h"
#include "services/controller/console/console_assets.h"
#include "services/controller/console/feature_files.h"
#include "services/controller/console/saelens_tar.h"

namespace sae::controller {
namespace {

using nlohmann::json;
using Route = metrics::MetricsServerOptions::Route;

constexpr char kJson[] = "application/json; charset=utf-8";
constexpr char kHtml[] = "text/html; charset=utf-8";

// Equal strings, in a time that depends on their lengths only.
bool SameSecret(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
  return difference == 0;
}

// The value of cookie `name` in the request's Cookie header, or "".
std::string CookieValue(const httplib::Request& request, absl::string_view name) {
  for (absl::string_view part : absl::StrSplit(request.get_header_value("Cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

void SendJson(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_header("Cache-Control", "no-store");
  response.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

void SendError(httplib::Response& response, const absl::Status& status) {
  int code = 500;
  if (absl::IsNotFound(status)) code = 404;
  if (absl::IsInvalidArgument(status)) code = 400;
  if (absl::IsFailedPrecondition(status)) code = 409;
  if (absl::IsUnavailable(status)) code = 503;
  SendJson(response, code, {{"error", std::string(status.message())}});
}

void SendAsset(httplib::Response& response, const std::string& name, int status = 200) {
  const ConsoleAsset* asset = FindConsoleAsset(name);
  if (asset == nullptr) {
    response.status = 404;
    response.set_content(absl::StrCat("no console asset ", name, "\n"), "text/plain");
    return;
  }
  response.status = status;
  response.set_header("Cache-Control", "no-cache");
  response.set_content(std::string(asset->body), std::string(asset->content_type));
}

void SetCookie(httplib::Response& response, const std::string& value, bool clear) {
  response.set_header(
      "Set-Cookie", absl::StrCat(kConsoleCookie, "=", value, "; Path=/; HttpOnly; SameSite=Strict",
                                 clear ? "; Max-Age=0" : "; Max-Age=2592000"));
}

class Console {
 public:
  Console(ConsoleApi* api, std::string token) : api_(api), token_(std::move(token)) {}

  bool Authorized(const httplib::Request& request) const {
    if (token_.empty()) return true;
    std::string header = request.get_header_value("Authorization");
    absl::string_view bearer = header;
    if (absl::ConsumePrefix(&bearer, "Bearer ") && SameSecret(bearer, token_)) return true;
    return SameSecret(CookieValue(request, kConsoleCookie), token_);
  }

  // Wraps an /api handler: 401 without the token.
  Route Api(std::string method, std::string pattern,
            std::function<void(const httplib::Request&, httplib::Response&)> handler) const {
    return {std::move(method), std::move(pattern),
            [this, handler = std::move(handler)](const httplib::Request& request,
                                                 httplib::Response& response) {
              if (!Authorized(request)) {
                SendJson(response, 401,
                         {{"error", "this controller requires its token: log in at /login, or "
                                    "send Authorization: Bearer TOKEN"}});
                return;
              }
              handler(request, response);
            }};
  }

  void Index(const httplib::Request& request, httplib::Response& response) const {
    if (!token_.empty() && request.has_param("token")) {
      if (SameSecret(request.get_param_value("token"), token_)) {
        SetCookie(response, token_, false);
        response.set_redirect("/", 303);
        return;
      }
      SendAsset(response, "login.html", 401);
      return;
    }
    if (!Authorized(request)) {
      SendAsset(response, "login.html", 401);
      return;
    }
    SendAsset(response, "index.html");
  }

  void Login(const httplib::Request& request, httplib::Response& response) const {
    httplib::Params form;
    httplib::detail::parse_query_text(request.body, form);
    auto token = form.find("token");
    if (token_.empty() || (token != form.end() && SameSecret(token->second, token_))) {
      if (!token_.empty()) SetCookie(response, token_, false);
      response.set_redirect("/", 303);
      return;
    }
    response.set_redirect("/login?wrong=1", 303);
  }

  void Download(const httplib::Request& request, httplib::Response& response) const {
    const std::string run_id = request.matches[1].str();
    int64_t step = 0;
    if (!absl::SimpleAtoi(request.matches[2].str(), &step)) {
      SendError(response, absl::InvalidArgumentError("the step is not a number"));
      return;
    }
    absl::StatusOr<v1::CheckpointManifest> manifest =
        api_->controller().FindCheckpoint(run_id, step);
    if (!manifest.ok()) {
      SendError(response, manifest.status());
      return;
    }
    // The folder and file name: the run id with anything but [A-Za-z0-9._-] replaced, so that
    // no run name can break the header or the tar's paths.
    std::string folder = absl::StrCat(run_id, "-step-", step);
    for (char& c : folder) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
        c = '_';
      }
    }
    struct Transfer {
      v1::CheckpointManifest manifest;
      SaeLensTar tar;
      int32_t next = 0;
      bool finished = false;
    };
    auto transfer = std::make_shared<Transfer>(Transfer{*manifest, SaeLensTar(folder)});
    response.set_header("Content-Disposition",
                        absl::StrCat("attachment; filename=\"", folder, ".tar\""));
    response.set_header("Cache-Control", "no-store");
    Controller* controller = &api_->controller();
    response.set_chunked_content_provider(
        "application/x-tar", [controller, transfer](size_t, httplib::DataSink& sink) {
          std::string out;
          if (transfer->next < transfer->manifest.chunk_count()) {
            const int32_t index = transfer->next++;
            absl::StatusOr<std::string> chunk = controller->ReadChunk(transfer->manifest, index);
            // A chunk that is gone (the checkpoint was deleted meanwhile) or damaged ends the
            // transfer without its last chunk: the client sees a broken download, never a
            // wrong file.
            const v1::CheckpointManifest& manifest = transfer->manifest;
            if (!chunk.ok() || (index < manifest.chunks_size() &&
                                rpc::Sha256::Of(*chunk) != manifest.chunks(index).sha256())) {
              return false;
            }
            if (!transfer->tar.Feed(*chunk, &out).ok()) return false;
          } else {
            if (!transfer->tar.Finish(&out).ok()) return false;
            transfer->finished = true;
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (transfer->finished) sink.done();
          return true;
        });
  }

  // The run's stored feature dashboards, indexed once per upload.
  absl::StatusOr<std::shared_ptr<const FeatureFiles>> FeatureFilesOf(
      const std::string& run_id) const {
    absl::StatusOr<v1::CheckpointManifest> found = api_->controller().FindFeatures(run_id);
    if (!found.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      feature_files_.erase(run_id);  // the run, or its dashboards, are gone
      return found.status();
    }
    const v1::CheckpointManifest& manifest = *found;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = feature_files_.find(run_id);
      if (it != feature_files_.end() &&
          it->second->manifest().upload_id() == manifest.upload_id()) {
        return it->second;
      }
    }
    Controller* controller = &api_->controller();
    auto read = [&](int32_t i) { return controller->ReadChunk(manifest, i); };
    SAE_ASSIGN_OR_RETURN(FeatureFiles files, FeatureFiles::Index(manifest, read));
    auto shared = std::make_shared<const FeatureFiles>(std::move(files));
    std::lock_guard<std::mutex> lock(mutex_);
    feature_files_[run_id] = shared;
    return shared;
  }

  void FeatureFile(const httplib::Request& request, httplib::Response& response) const {
    const std::string path = request.matches[2].str();
    if (absl::StrContains(path, "..")) {
      SendError(response, absl::InvalidArgumentError("a path with '..'"));
      return;
    }
    absl::StatusOr<std::shared_ptr<const FeatureFiles>> files =
        FeatureFilesOf(request.matches[1].str());
    if (!files.ok()) {
      SendError(response, files.status());
      return;
    }
    const int64_t size = (*files)->Size(path);
    if (size < 0) {
      SendError(response, absl::NotFoundError(absl::StrCat("the run's feature dashboards hold no ",
                                                           "file ", path)));
      return;
    }
    // Stored dashboards never change under one upload; a new upload is a new index.
    response.set_header("Cache-Control", "no-cache");
    Controller* controller = &api_->controller();
    std::shared_ptr<const FeatureFiles> shared = *files;
    response.set_content_provider(
        static_cast<size_t>(size), FeatureFileContentType(path),
        [controller, shared, path](size_t offset, size_t length, httplib::DataSink& sink) {
          const v1::CheckpointManifest& manifest = shared->manifest();
          absl::StatusOr<std::string> piece = shared->Read(
              path, static_cast<int64_t>(offset), static_cast<int64_t>(length),
              [&](int32_t i) { return controller->ReadChunk(manifest, i); });
          // A damaged or deleted chunk ends the response early: a broken download, never a
          // wrong file.
          if (!piece.ok() || piece->empty()) return false;
          return sink.write(piece->data(), piece->size());
        });
  }

  void Stop(const httplib::Request& request, httplib::Response& response) const {
    if (request.get_header_value("X-Sae-Console") != "1") {
      SendJson(response, 403, {{"error", "stop from the console page (header X-Sae-Console)"}});
      return;
    }
    v1::StopRunRequest stop;
    stop.set_run_id(request.matches[1].str());
    stop.set_reason("stopped from the web console");
    absl::StatusOr<v1::Run> run = api_->controller().StopRun(stop);
    if (!run.ok()) {
      SendError(response, run.status());
      return;
    }
    SendJson(response, 200, ProtoJson(*run));
  }

  std::vector<Route> Routes() const {
    std::vector<Route> routes;
    routes.push_back({"GET", "/", [this](const auto& q, auto& r) { Index(q, r); }});
    routes.push_back({"GET", "/login", [](const auto&, auto& r) { SendAsset(r, "login.html"); }});
    routes.push_back({"POST", "/login", [this](const auto& q, auto& r) { Login(q, r); }});
    routes.push_back({"GET", "/logout", [this](const auto&, auto& r) {
                        SetCookie(r, "", true);
                        r.set_redirect("/login", 303);
                      }});
    routes.push_back({"GET", R"(/assets/([A-Za-z0-9_.-]+))",
                      [](const auto& q, auto& r) { SendAsset(r, q.matches[1].str()); }});
    routes.push_back(Api("GET", "/api/runs", [this](const auto& q, auto& r) {
      std::vector<std::string> states;
      if (q.has_param("state")) {
        states = absl::StrSplit(q.get_param_value("state"), ',', absl::SkipEmpty());
      }
      SendJson(r, 200, api_->Runs(states));
    }));
    routes.push_back(Api("GET", R"(/api/runs/([^/]+))", [this](const auto& q, auto& r) {
      absl::StatusOr<json> run = api_->Run(q.matches[1].str());
      run.ok() ? SendJson(r, 200, *run) : SendError(r, run.status());
    }));
    routes.push_back(Api("GET", R"(/api/runs/([^/]+)/history)", [this](const auto& q, auto& r) {
      absl::StatusOr<json> history =
          api_->History(q.matches[1].str(), q.has_param("sae") ? q.get_param_value("sae") : "");
      history.ok() ? SendJson(r, 200, *history) : SendError(r, history.status());
    }));
    routes.push_back(Api("GET", R"(/api/runs/([^/]+)/events)", [this](const auto& q, auto& r) {
      uint64_t after = 0;
      if (q.has_param("after") && !absl::SimpleAtoi(q.get_param_value("after"), &after)) {
        SendError(r, absl::InvalidArgumentError("after: not a sequence number"));
        return;
      }
      absl::StatusOr<json> events = api_->Events(q.matches[1].str(), after);
      events.ok() ? SendJson(r, 200, *events) : SendError(r, events.status());
    }));
    routes.push_back(Api("GET", "/api/info", [this](const auto&, auto& r) {
      SendJson(r, 200,
               {{"auth_required", !token_.empty()},
                {"uplot", ConsoleHasUplot()},
                {"history_capacity", ProgressHistory::kDefaultCapacity}});
    }));
    routes.push_back(Api("GET", "/api/workers",
                         [this](const auto&, auto& r) { SendJson(r, 200, api_->Workers()); }));
    routes.push_back(Api("GET", R"(/api/runs/([^/]+)/checkpoints/([0-9]+)/download)",
                         [this](const auto& q, auto& r) { Download(q, r); }));
    routes.push_back(Api("GET", R"(/api/runs/([^/]+)/features/([A-Za-z0-9_][A-Za-z0-9_./-]*))",
                         [this](const auto& q, auto& r) { FeatureFile(q, r); }));
    routes.push_back(Api("POST", R"(/api/runs/([^/]+)/stop)",
                         [this](const auto& q, auto& r) { Stop(q, r); }));
    return routes;
  }

 private:
  ConsoleApi* const api_;
  const std::string token_;
  mutable std::mutex mutex_;  // Guards feature_files_.
  // By run id; dropped when the run turns out to be gone.
  mutable std::map<std::string, std::shared_ptr<const FeatureFiles>> feature_files_;
};

}  // namespace

std::vector<Route> ConsoleRoutes(ConsoleApi* api, const std::string& auth_token) {
  // The routes share one Console, which lives as long as any of them.
  auto console = std::make_shared<Console>(api, auth_token);
  std::vector<Route> routes = console->Routes();
  for (Route& route : routes) {
    route.handler = [console, handler = std::move(route.handler)](const httplib::Request& q,
                                                                  httplib::Response& r) {
      handler(q, r);
    };
  }
  return routes;
}

}  // namespace sae::controller
