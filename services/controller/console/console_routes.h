// The web console's HTTP routes, served by the controller's metrics server beside /metrics
// (docs/operations.md, "The web console"):
//
//   GET  /                      the console (a single page: runs, run, workers), or the login
//                               page when a token is required and the request carries none
//   GET  /?token=T              logs in (sets the cookie) and redirects to /
//   GET  /login, POST /login    the login form; POST checks `token` and sets the cookie
//   GET  /logout                clears the cookie
//   GET  /assets/NAME           the console's HTML, JS and CSS and uPlot, embedded in the binary
//   GET  /api/runs[?state=RUNNING,PENDING]    ConsoleApi::Runs
//   GET  /api/runs/ID           ConsoleApi::Run
//   GET  /api/runs/ID/history   ConsoleApi::History
//   GET  /api/runs/ID/events[?after=SEQ]      ConsoleApi::Events
//   GET  /api/workers           ConsoleApi::Workers
//   GET  /api/info              {"auth_required", "uplot" (built in), "history_capacity"}
//   GET  /api/runs/ID/features/PATH   a file of the run's stored feature dashboards
//                               (`saectl features RUN`: index.html, data/index.js, data/chunk-
//                               NNNNN.js, features.jsonl, ...), read out of their archive in the
//                               store (feature_files.h); 404 when the run has none
//   GET  /api/runs/ID/checkpoints/STEP/download   the SAELens folder of that checkpoint as a
//                               tar (saelens_tar.h), streamed chunk by chunk, each chunk checked
//                               against its SHA-256
//   POST /api/runs/ID/stop      StopRun; only with the header `X-Sae-Console: 1` (which a form
//                               of another site cannot send)
//
// With a token, everything but /assets, /login and /logout requires it, as `Authorization:
// Bearer T` or the cookie `sae_console_token` (HttpOnly, SameSite=Strict) that logging in sets:
// without it /api answers 401 and / the login page. Assets hold no run data.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ROUTES_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ROUTES_H_

#include <string>
#include <vector>

#include "core/metrics/metrics_server.h"
#include "services/controller/console/console_api.h"

namespace sae::controller {

inline constexpr char kConsoleCookie[] = "sae_console_token";

// The routes of the console over `api` (which must outlive the server). `auth_token` empty:
// the console is open, like the controller's gRPC port without --auth-token.
std::vector<metrics::MetricsServerOptions::Route> ConsoleRoutes(ConsoleApi* api,
                                                                const std::string& auth_token);

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_CONSOLE_ROUTES_H_
