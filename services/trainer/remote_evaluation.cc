#include "services/trainer/remote_evaluation.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "sae/v1/activations.grpc.pb.h"
#include "services/common/sae_transfer.h"
#include "services/common/stream_protocol.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {
namespace {

// Parameters copied off the trainer, so that training can change its own.
sparse::SaeParameters Copy(const sparse::SaeParameters& params) { return params.Clone(); }

}  // namespace

RemoteEvaluator::RemoteEvaluator(RemoteEvaluationOptions options, Report report)
    : options_(std::move(options)), report_(std::move(report)) {}

RemoteEvaluator::~RemoteEvaluator() {
  closing_ = true;
  {
    std::lock_guard<std::mutex> lock(context_mutex_);
    if (context_ != nullptr) context_->TryCancel();
  }
  Join();
}

void RemoteEvaluator::Join() {
  if (thread_.joinable()) thread_.join();
}

bool RemoteEvaluator::Start(int64_t step, int64_t tokens, const sparse::SaeParameters& params,
                            const std::string& sae) {
  if (running_.load()) {
    ++skipped_;
    spdlog::warn("evaluation{} at step {} skipped: the previous one is still running",
                 sae.empty() ? "" : absl::StrCat(" of ", sae), step);
    return false;
  }
  Join();
  running_ = true;
  const size_t server = next_server_++ % options_.servers.size();
  thread_ = std::thread([this, server, step, tokens, params = Copy(params), sae] {
    RemoteEvaluation outcome = EvaluateOn(server, step, tokens, params, sae);
    if (!closing_) report_(outcome);
    running_ = false;
  });
  return true;
}

RemoteEvaluation RemoteEvaluator::EvaluateNow(int64_t step, int64_t tokens,
                                              const sparse::SaeParameters& params, bool final,
                                              const std::string& sae) {
  Join();
  RemoteEvaluation outcome;
  for (size_t i = 0; i < options_.servers.size() && !closing_; ++i) {
    outcome = EvaluateOn(next_server_++ % options_.servers.size(), step, tokens, params, sae);
    outcome.final = final;
    report_(outcome);
    if (outcome.results.ok()) break;
  }
  return outcome;
}

RemoteEvaluation RemoteEvaluator::EvaluateOn(size_t server, int64_t step, int64_t tokens,
                                             const sparse::SaeParameters& params,
                                             const std::string& sae) {
  RemoteEvaluation outcome;
  outcome.sae = sae;
  outcome.step = step;
  outcome.tokens = tokens;
  outcome.server = options_.servers[server];
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](const absl::Status& status) {
    outcome.results = absl::Status(
        status.code(), absl::StrCat("evaluation", sae.empty() ? "" : absl::StrCat(" of ", sae),
                                    " at step ", step, " on activation server ",
                                    outcome.server, ": ", status.message()));
    outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return outcome;
  };
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      stream::CreateStreamChannel(outcome.server, options_.security);
  if (!channel.ok()) return fail(channel.status());
  std::unique_ptr<v1::ActivationService::Stub> stub = v1::ActivationService::NewStub(*channel);
  grpc::ClientContext context;
  rpc::PrepareCall(&context, options_.security, options_.timeout);
  {
    std::lock_guard<std::mutex> lock(context_mutex_);
    if (closing_) return fail(absl::CancelledError("the trainer is stopping"));
    context_ = &context;
  }
  v1::EvaluateSaeResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::EvaluateSaeRequest>> writer =
      stub->EvaluateSae(&context, &response);
  v1::EvaluateSaeRequest first;
  first.set_run_id(options_.run_id);
  first.set_config_digest(options_.config_digest);
  first.set_step(step);
  first.set_sae(sae);
  // A broken stream shows in Finish's status, which says why.
  (void)service::SendSaePieces(params, first, [&](const v1::EvaluateSaeRequest& piece) {
    return writer->Write(piece);
  });
  writer->WritesDone();
  const grpc::Status finished = writer->Finish();
  {
    std::lock_guard<std::mutex> lock(context_mutex_);
    context_ = nullptr;
  }
  if (!finished.ok()) return fail(rpc::ToAbslStatus(finished));
  nlohmann::json json = nlohmann::json::parse(response.results_json(), nullptr, false);
  absl::StatusOr<eval::EvalResults> results =
      json.is_discarded() ? absl::DataLossError("the server's results are not JSON")
                          : eval::EvalResultsFromJson(json);
  if (!results.ok()) return fail(results.status());
  outcome.results = *std::move(results);
  outcome.results_json = response.results_json();
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

}  // namespace sae::trainer
