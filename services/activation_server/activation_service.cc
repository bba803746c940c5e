#include "services/activation_server/activation_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/wire/activation_codec.h"
#include "services/common/stream_protocol.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {
namespace {

// How long a handler waits for a batch before it looks again at cancellation and shutdown.
constexpr absl::Duration kTakePoll = absl::Milliseconds(100);
// How long a call waits for the previous call of the same consumer to end.
constexpr absl::Duration kReplaceWait = absl::Seconds(5);

grpc::Status Error(grpc::StatusCode code, const std::string& message) {
  return grpc::Status(code, message);
}

}  // namespace

ActivationServiceImpl::ActivationServiceImpl(ServedRun run, ActivationFeed* feed,
                                             ConsumerSessions* sessions, ServerMetrics* metrics,
                                             SaeEvaluations* evaluations, std::string auth_token)
    : run_(std::move(run)),
      feed_(feed),
      sessions_(sessions),
      metrics_(metrics),
      evaluations_(evaluations),
      auth_(std::move(auth_token)) {}

grpc::Status ActivationServiceImpl::CheckRequest(const v1::StreamRequest& request) const {
  if (request.run_id() != run_.run_id || request.config_digest() != run_.config_digest) {
    const bool early = run_.other_runs_are_early && request.run_id() != run_.run_id;
    return Error(
        early ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("this activation server streams run \"", run_.run_id, "\" (config digest ",
                     run_.config_digest, "); the consumer belongs to run \"", request.run_id(),
                     "\" (config digest ", request.config_digest(),
                     "): start both from the same run.yaml and --run-id"));
  }
  if (request.consumer_count() < 1 || request.consumer_rank() < 0 ||
      request.consumer_rank() >= request.consumer_count()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("consumer rank ", request.consumer_rank(), " of ",
                              request.consumer_count(), " does not exist"));
  }
  if (request.batch_size() * request.consumer_count() != run_.train_batch_size) {
    return Error(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("batches of ", request.batch_size(), " for ", request.consumer_count(),
                     " consumers do not make the run's "
                     "train_batch_size of ",
                     run_.train_batch_size));
  }
  const int64_t capacity = feed_->options().store.buffer.capacity;
  if (request.batch_size() > capacity / 2) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("batches of ", request.batch_size(),
                              " activations exceed half the mixing buffer (", capacity / 2,
                              "): raise n_batches_in_buffer or use more trainers"));
  }
  if (!stream::FromWire(request.wire_dtype()).ok()) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrCat("unknown wire dtype ", request.wire_dtype()));
  }
  if (request.max_batches() < 0) {
    return Error(grpc::StatusCode::INVALID_ARGUMENT, "max_batches must not be negative");
  }
  return grpc::Status::OK;
}

grpc::Status ActivationServiceImpl::CheckTrainerGeneration(const v1::StreamRequest& request) const {
  const int64_t served = trainer_generation_;
  const int64_t asked = static_cast<int64_t>(request.generation());
  if (served == kBetweenGenerations) {
    return Error(grpc::StatusCode::UNAVAILABLE,
                 absl::StrCat("run \"", run_.run_id,
                              "\" is between two generations of its trainer group: waiting for "
                              "the controller's next assignment"));
  }
  if (asked < served) {
    return Error(grpc::StatusCode::FAILED_PRECONDITION,
                 absl::StrCat("the consumer belongs to generation ", asked, " of run \"",
                              run_.run_id, "\", which was replaced by generation ", served));
  }
  if (asked > served) {
    return Error(grpc::StatusCode::UNAVAILABLE,
                 absl::StrCat("this server has not been assigned generation ", asked, " of run \"",
                              run_.run_id, "\" yet (it serves generation ", served, ")"));
  }
  return grpc::Status::OK;
}

grpc::Status ActivationServiceImpl::ApplyResumeCursors(const v1::StreamRequest& request) {
  for (const std::string& bytes : request.resume_cursors()) {
    absl::StatusOr<data::ShardCursor> cursor = data::ShardCursor::FromBytes(bytes);
    if (!cursor.ok()) {
      return Error(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrCat("a resume cursor is invalid: ", cursor.status().message()));
    }
    absl::StatusOr<bool> skipped = feed_->SkipTo(*cursor);
    if (!skipped.ok()) return rpc::ToGrpcStatus(skipped.status());
  }
  return grpc::Status::OK;
}

absl::Duration ActivationServiceImpl::OldestWriteWait() const {
  absl::MutexLock lock(&writes_mutex_);
  if (writes_started_.empty()) return absl::ZeroDuration();
  return absl::Now() - *writes_started_.begin();
}

bool ActivationServiceImpl::Write(grpc::ServerWriter<v1::ActivationBatch>* writer,
                                  const v1::ActivationBatch& batch) {
  const auto start = std::chrono::steady_clock::now();
  std::multiset<absl::Time>::iterator started;
  {
    absl::MutexLock lock(&writes_mutex_);
    started = writes_started_.insert(absl::Now());
  }
  const bool written = writer->Write(batch);
  {
    absl::MutexLock lock(&writes_mutex_);
    writes_started_.erase(started);
  }
  if (written && metrics_ != nullptr) {
    metrics_->write_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    metrics_->sent_bytes->Increment(static_cast<double>(batch.data().size()));
    metrics_->sent_batches->Increment();
    if (batch.resent()) metrics_->resent_batches->Increment();
  }
  return written;
}

absl::StatusOr<std::unique_ptr<v1::ActivationBatch>> ActivationServiceImpl::NextBatch(
    const v1::StreamRequest& request, config::DType dtype) {
  absl::StatusOr<FeedBatch> taken = feed_->Take(request.batch_size(), kTakePoll);
  if (!taken.ok()) return taken.status();
  auto message = std::make_unique<v1::ActivationBatch>();
  message->set_dtype(request.wire_dtype());
  message->add_shape(taken->rows.size(0));
  message->add_shape(taken->rows.size(1));
  absl::Status encoded = wire::EncodeActivations(taken->rows, dtype, message->mutable_data());
  if (!encoded.ok()) return encoded;
  message->set_stream_offset(taken->stream_offset);
  message->set_frontier_cursor(taken->frontier.ToBytes());
  message->set_shard_index(static_cast<int32_t>(feed_->options().shard_index));
  message->set_shard_count(static_cast<int32_t>(feed_->options().shard_count));
  return message;
}

grpc::Status ActivationServiceImpl::StreamActivations(
    grpc::ServerContext* context, const v1::StreamRequest* request,
    grpc::ServerWriter<v1::ActivationBatch>* writer) {
  if (grpc::Status denied = auth_.Check(*context); !denied.ok()) return denied;
  if (shutting_down_) return Error(grpc::StatusCode::UNAVAILABLE, "shutting down");
  if (grpc::Status bad = CheckRequest(*request); !bad.ok()) return bad;
  if (grpc::Status other = CheckTrainerGeneration(*request); !other.ok()) return other;
  if (grpc::Status bad = ApplyResumeCursors(*request); !bad.ok()) return bad;
  absl::StatusOr<std::unique_ptr<ConsumerCall>> call =
      sessions_->Attach(*request, context, kReplaceWait);
  if (!call.ok()) return rpc::ToGrpcStatus(call.status());

  const int max_batches = std::min(request->max_batches(), run_.max_batches_per_call);
  const config::DType dtype = *stream::FromWire(request->wire_dtype());
  int sent = 0;
  for (const v1::ActivationBatch* batch : (*call)->Unacknowledged()) {
    if (sent == max_batches) return grpc::Status::OK;
    if (!Write(writer, *batch)) return Error(grpc::StatusCode::CANCELLED, "consumer went away");
    ++sent;
  }
  while (sent < max_batches) {
    if (shutting_down_) return Error(grpc::StatusCode::UNAVAILABLE, "shutting down");
    if (context->IsCancelled()) return Error(grpc::StatusCode::CANCELLED, "cancelled");
    if ((*call)->replaced()) {
      return Error(grpc::StatusCode::ABORTED, "a newer call of this consumer took over");
    }
    if (grpc::Status other = CheckTrainerGeneration(*request); !other.ok()) return other;
    absl::StatusOr<std::unique_ptr<v1::ActivationBatch>> next = NextBatch(*request, dtype);
    if (next.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
    if (!next.ok()) {
      if (shutting_down_) return Error(grpc::StatusCode::UNAVAILABLE, "shutting down");
      return rpc::ToGrpcStatus(next.status());
    }
    // Kept before it is written: if the write fails, the consumer gets it on its next call.
    const v1::ActivationBatch* kept = (*call)->Keep(*std::move(next));
    if (metrics_ != nullptr) {
      metrics_->served_activations->Increment(static_cast<double>(request->batch_size()));
    }
    if (!Write(writer, *kept)) return Error(grpc::StatusCode::CANCELLED, "consumer went away");
    ++sent;
  }
  return grpc::Status::OK;
}

grpc::Status ActivationServiceImpl::GetServerStatus(grpc::ServerContext* context,
                                                    const v1::GetServerStatusRequest*,
                                                    v1::ServerStatus* status) {
  if (grpc::Status denied = auth_.Check(*context); !denied.ok()) return denied;
  status->set_run_id(run_.run_id);
  status->set_config_digest(run_.config_digest);
  status->set_shard_index(static_cast<int32_t>(feed_->options().shard_index));
  status->set_shard_count(static_cast<int32_t>(feed_->options().shard_count));
  status->set_server_incarnation(sessions_->incarnation());
  status->set_frontier_cursor(feed_->frontier().ToBytes());
  status->set_start_cursor(feed_->start_cursor().ToBytes());
  status->set_d_in(feed_->d_in());
  status->set_tokens_generated(feed_->tokens_generated());
  status->set_activations_served(feed_->rows_served());
  const data::MixingBufferFill fill = feed_->fill();
  status->set_buffer_stored(fill.stored);
  status->set_buffer_capacity(fill.capacity);
  status->set_max_batches_per_call(run_.max_batches_per_call);
  status->set_consumers(sessions_->sessions());
  status->set_active_streams(sessions_->attached());
  if (const int64_t generation = trainer_generation_; generation != kBetweenGenerations) {
    status->set_generation(static_cast<uint64_t>(generation));
  }
  return grpc::Status::OK;
}

grpc::Status ActivationServiceImpl::EvaluateSae(grpc::ServerContext* context,
                                                grpc::ServerReader<v1::EvaluateSaeRequest>* reader,
                                                v1::EvaluateSaeResponse* response) {
  if (grpc::Status denied = auth_.Check(*context); !denied.ok()) return denied;
  if (shutting_down_) return Error(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  return evaluations_->Serve(run_.run_id, run_.config_digest, reader, response);
}

}  // namespace sae::activation_server
