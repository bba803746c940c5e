// ActivationService.EvaluateSae: an activation server evaluates an SAE of its run inside its
// own model (core/training RunEvaluator over core/eval), on the run's evaluation contexts,
// while its feed goes on generating. Trainer rank 0 sends the parameters at the run's cadence
// (services/trainer/remote_evaluation.h); the design and its cost are in docs/architecture.md.
#ifndef SAE_SERVICES_ACTIVATION_SERVER_SAE_EVALUATIONS_H_
#define SAE_SERVICES_ACTIVATION_SERVER_SAE_EVALUATIONS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "core/sae/sae_options.h"
#include "core/training/run_evaluation.h"
#include "sae/v1/activations.grpc.pb.h"

namespace sae::activation_server {

// Thread-safe; one evaluation at a time.
class SaeEvaluations {
 public:
  // `evaluator`: the run's (RunEvaluator::Create, which read the evaluation contexts), null
  // when the run has no evaluations; its model must outlive this.
  SaeEvaluations(std::unique_ptr<training::RunEvaluator> evaluator,
                 sparse::SaeOptions sae_options) {
    saes_[""] = Sae{std::move(evaluator), std::move(sae_options)};
  }

  // One SAE of a run of many (core/config/sweep.h): its evaluator (on its own hook) and
  // options.
  struct Sae {
    std::unique_ptr<training::RunEvaluator> evaluator;
    sparse::SaeOptions options;
  };
  // A run of many SAEs: by name (EvaluateSaeRequest.sae).
  explicit SaeEvaluations(std::map<std::string, Sae> saes) : saes_(std::move(saes)) {}

  // Serves one EvaluateSae call for the run (`run_id`, `config_digest`): reads the pieces,
  // evaluates, answers. Status codes as activations.proto documents them.
  grpc::Status Serve(const std::string& run_id, const std::string& config_digest,
                     grpc::ServerReader<v1::EvaluateSaeRequest>* reader,
                     v1::EvaluateSaeResponse* response);

  int64_t evaluations() const { return evaluations_.load(); }

 private:
  // By name ("" for a run of one SAE); constant after construction.
  std::map<std::string, Sae> saes_;
  std::mutex mutex_;  // held for a whole evaluation
  std::atomic<int64_t> evaluations_{0};
};

}  // namespace sae::activation_server

#endif  // SAE_SERVICES_ACTIVATION_SERVER_SAE_EVALUATIONS_H_
