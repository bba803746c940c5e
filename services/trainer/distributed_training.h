// One rank of a data-parallel SAE training run fed by activation servers: this file sets up
// the group (c10d), the stream readers and the prefetch queue, and hands them to core/training's
// RunTrainingLoop, the loop `saectl train` runs too (b_dec from an initial sample, checkpoints
// at i * total / n_checkpoints, the final SAE in SAELens format). Batch semantics: each of N
// ranks takes train_batch_size / N activations per step, and one step of the group equals one
// single-process step on the whole batch (core/sae SaeTrainer does the maths given a
// Collective).
//
// sae-trainer's main builds the options from flags and run.yaml; a worker started with
// --controller builds them from its assignment and reports through the callbacks.
#ifndef SAE_SERVICES_TRAINER_DISTRIBUTED_TRAINING_H_
#define SAE_SERVICES_TRAINER_DISTRIBUTED_TRAINING_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/config/run_config.h"
#include "core/metrics/registry.h"
#include "core/sae/sae_trainer.h"
#include "services/common/rpc.h"
#include "services/trainer/activation_stream.h"
#include "services/trainer/process_group.h"
#include "services/trainer/remote_evaluation.h"

namespace sae::trainer {

// How a trainer process reads its activation servers, whatever the run.
struct StreamSettings {
  rpc::ClientSecurity security;
  // Batches received ahead of the step, at most (0: 2 per server, at least 4).
  int prefetch_batches = 0;
  // Batches per StreamActivations call, at most.
  int max_batches_per_call = 8;
  // How long a server may stay unreachable before the run fails.
  absl::Duration server_deadline = absl::Seconds(60);
  // Deadline of one StreamActivations call (the reader calls again after it).
  absl::Duration call_timeout = absl::Minutes(10);
};

struct DistributedTrainingOptions {
  // The run, as parsed from run.yaml (resolved here against the model's config.json).
  config::RunConfig config;
  // The run's id; the activation servers must serve the same. "": wire::DefaultRunId(config).
  std::string run_id;

  // The group: this rank, the number of ranks, rank 0's TCPStore (host:port; unused for a
  // world of one), the backend and timeouts. store_prefix and abort are set from run_id,
  // generation and `abort` below.
  ProcessGroupOptions group;

  // The activation servers (host:port), in shard order: every rank streams from all of them.
  std::vector<std::string> servers;
  StreamSettings stream;

  // Rank 0 writes run.yaml, checkpoints (under config.checkpoint_path), the final SAE (final/)
  // and summary.json here.
  std::string output_dir;
  // A checkpoint folder to continue from (every rank reads it).
  std::optional<std::string> resume_dir;
  // When not empty: one JSON line per batch this rank trained on (server, incarnation,
  // sequence, stream offset, rows, sums of its values, the step's losses).
  std::string batch_log;

  // Optional: the Prometheus registry for the training and stream series.
  metrics::Registry* metrics = nullptr;
  // Optional: set (e.g. on SIGTERM) to checkpoint and stop at the next step boundary. Any rank
  // may set it; all ranks stop at the same step.
  const std::atomic<bool>* stop = nullptr;
  // The trainer group's generation (the controller's restart count; 0 when started by hand):
  // sent to the activation servers, which serve one generation at a time, and part of the
  // rendezvous keys, so that a new group never meets ranks of an older one.
  uint64_t generation = 0;
  // Optional: set to abandon the run now, without a checkpoint (the controller started another
  // generation of the group, or took the assignment away); the call then returns Cancelled.
  // It ends a rendezvous, a wait for data and the streams within 50 ms; a collective in
  // progress ends when the other ranks leave the group (they abandon it too, or died).
  const std::atomic<bool>* abort = nullptr;
  // The furthest global token count of this run that this rank trained to in earlier
  // generations (0: none). The group learns its maximum, which tells how many tokens a rollback
  // to the checkpoint skipped.
  int64_t tokens_trained_before = 0;
  // Optional, every rank: once the group formed and the checkpoint was read, before any batch
  // is taken, with the maximum of every rank's tokens_trained_before.
  std::function<void(int64_t tokens_trained_before)> on_group_ready;
  // Optional, every rank: after every step.
  std::function<void(const sparse::StepMetrics& step, double tokens_per_second,
                     int64_t total_steps)>
      on_step;
  // Optional, every rank of a run of many SAEs (core/config/sweep.h), instead of on_step: after
  // every step of every SAE, with its index and name in the run; in a step the SAEs step in the
  // run's order, so the last SAE's call ends the step.
  std::function<void(size_t index, const std::string& sae, const sparse::StepMetrics& step,
                     double tokens_per_second, int64_t total_steps)>
      on_sae_step;
  // Optional, rank 0: after each checkpoint (and the final SAE, `final` true) is written. A run
  // of many SAEs calls it once per step with a folder that holds every SAE under saes/<name>/
  // (and the run's run.yaml).
  std::function<absl::Status(const std::string& dir, int64_t step, bool final)> on_checkpoint;
  // Optional, rank 0 of a run with evaluations (n_eval_batches > 0): every evaluation's
  // outcome, from the evaluation's thread (remote_evaluation.h). Unset: each is logged.
  std::function<void(const RemoteEvaluation& outcome)> on_eval;
};

struct DistributedTrainingResult {
  int64_t steps = 0;
  int64_t tokens = 0;  // global
  bool stopped = false;
  std::string final_dir;          // rank 0, when not stopped
  std::string last_checkpoint;    // rank 0
  double seconds = 0;             // start to end, loading and rendezvous included
  double tokens_per_second = 0;   // global tokens over the training loop's time
  double wait_seconds = 0;        // this rank's time waiting for batches
  double collective_seconds = 0;  // this rank's time in collectives
  sparse::StepMetrics first;
  sparse::StepMetrics last;
  std::vector<std::string> cursors;            // per server: the furthest cursor, hex ("" none)
  std::vector<ActivationStreamStats> streams;  // per server, this rank
  // Per SAE, in the run's order (one named "" for a run of one SAE).
  struct Sae {
    std::string name;
    std::string final_dir;  // rank 0, when not stopped
    sparse::StepMetrics last;
  };
  std::vector<Sae> saes;
};

// Trains this rank to the end of the run (TotalTrainingSteps(config), the same step on every
// rank) or until `stop`. Errors: InvalidArgument for a config or flag mistake (naming it);
// Unavailable / DeadlineExceeded when the group or a server is gone (naming which); Cancelled
// after `abort`.
absl::StatusOr<DistributedTrainingResult> RunDistributedTraining(
    DistributedTrainingOptions options);


}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_DISTRIBUTED_TRAINING_H_
