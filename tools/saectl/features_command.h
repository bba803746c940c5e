// saectl features: the local form (an SAE folder, a model and a dataset on this machine) and the
// cluster form (a run id: the run's SAE, model and dataset, the result stored with the run in the
// controller). docs/features.md.
#ifndef SAE_TOOLS_SAECTL_FEATURES_COMMAND_H_
#define SAE_TOOLS_SAECTL_FEATURES_COMMAND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "tools/saectl/server_flags.h"

namespace sae::saectl {

struct FeaturesFlags {
  std::string sae_dir;  // or, for the cluster form, the run id
  std::string model;
  std::string dataset;
  int64_t tokens = 1000000;
  int64_t top = 20;
  std::string features;  // empty: every feature
  bool all = false;
  std::string out;  // empty: SAE_DIR/features (local form), no local copy (cluster form)
  int64_t context_size = 0;
  std::string prepend_bos;
  std::string processing;
  std::string dtype = "float32";
  std::string tokenizer;
  int intervals = 10;
  int samples = 5;
  int window_before = 10;
  int window_after = 5;
  int logit_k = 10;
  int neighbours = 10;
  int threads = 0;
  // Cluster form only: the checkpoint step (-1: the final SAE, else the newest checkpoint) and
  // how to reach the controller.
  int64_t step = -1;
  ServerFlags server;
  // What summary.json and the printed lines call the SAE ("" : sae_dir).
  std::string sae_label;
};

// The local form: computes the dashboards of the SAE folder `flags.sae_dir` into `flags.out`
// (written whole, then renamed into place). Needs --model and --dataset.
absl::Status RunFeatures(const FeaturesFlags& flags);

// The cluster form: downloads run `flags.sae_dir`'s SAE (final, --step, else the newest
// checkpoint), computes its dashboards here with the run's model, tokenizer and dataset (flags
// override them), uploads the output folder to the controller as the run's feature dashboards
// (UploadCheckpoint with UploadHeader.features), and keeps a copy in --out when given.
absl::Status RunFeaturesOfRun(const FeaturesFlags& flags);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_FEATURES_COMMAND_H_
