#include "services/activation_server/sae_evaluations.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/eval/eval_results.h"
#include "services/common/rpc.h"
#include "services/common/sae_transfer.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {

grpc::Status SaeEvaluations::Serve(const std::string& run_id, const std::string& config_digest,
                                   grpc::ServerReader<v1::EvaluateSaeRequest>* reader,
                                   v1::EvaluateSaeResponse* response) {
  v1::EvaluateSaeRequest piece;
  if (!reader->Read(&piece)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "an EvaluateSae call sent nothing");
  }
  if (piece.run_id() != run_id || piece.config_digest() != config_digest) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this activation server evaluates run \"", run_id, "\" (config digest ",
                     config_digest, "); the SAE belongs to run \"", piece.run_id(),
                     "\" (config digest ", piece.config_digest(), ")"));
  }
  auto sae = saes_.find(piece.sae());
  if (sae == saes_.end()) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("run \"", run_id, "\" has no SAE named \"", piece.sae(), "\""));
  }
  const sparse::SaeOptions& sae_options = sae->second.options;
  const std::string label = piece.sae().empty() ? "" : absl::StrCat(" ", piece.sae());
  if (sae->second.evaluator == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("run \"", run_id, "\" has no evaluations (n_eval_batches 0)"));
  }
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "an evaluation is running on this server; try again when it ends");
  }
  const int64_t step = piece.step();
  service::SaeAssembler assembler;
  do {
    if (absl::Status added = assembler.Add(piece); !added.ok()) return rpc::ToGrpcStatus(added);
  } while (reader->Read(&piece));
  absl::StatusOr<sparse::SaeParameters> params = assembler.Finish(sae_options);
  if (!params.ok()) return rpc::ToGrpcStatus(params.status());
  const training::RunEvaluator* evaluator = sae->second.evaluator.get();

  spdlog::info("evaluating the SAE{} of run {} at step {} on {} contexts", label, run_id, step,
               evaluator->contexts());
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<eval::EvalResults> results = evaluator->Evaluate(sae_options, *params);
  if (!results.ok()) return rpc::ToGrpcStatus(results.status());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++evaluations_;
  spdlog::info("evaluated the SAE{} of run {} at step {} in {:.2f} s: {}", label, run_id, step,
               seconds,
               training::EvalSummaryLine(*results));
  response->set_results_json(eval::ToJson(*results).dump());
  response->set_seconds(seconds);
  response->set_contexts(evaluator->contexts());
  return grpc::Status::OK;
}

}  // namespace sae::activation_server
