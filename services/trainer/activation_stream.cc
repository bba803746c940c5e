#include "services/trainer/activation_stream.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/wire/activation_codec.h"
#include "services/common/stream_protocol.h"
#include "spdlog/spdlog.h"

namespace sae::trainer {
namespace {

// Codes a retry cannot fix: the request or the server is wrong, not the network.
bool Retryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return false;
    default:
      return true;
  }
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat(rpc::ToAbslStatus(status).ToString());
}

}  // namespace

absl::StatusOr<std::unique_ptr<ActivationStreamReader>> ActivationStreamReader::Start(
    ActivationStreamOptions options, PrefetchQueue* queue, ServerStreamMetrics* metrics) {
  if (options.batch_size <= 0 || options.d_in <= 0 || options.lease < 1) {
    return absl::InvalidArgumentError("a stream needs a batch size, d_in and a lease of >= 1");
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      stream::CreateStreamChannel(options.address, options.security);
  if (!channel.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("activation server \"", options.address, "\": ", channel.status().message()));
  }
  std::unique_ptr<ActivationStreamReader> reader(
      new ActivationStreamReader(std::move(options), queue, metrics, *std::move(channel)));
  reader->thread_ = std::thread([r = reader.get()] { r->Loop(); });
  return reader;
}

ActivationStreamReader::ActivationStreamReader(ActivationStreamOptions options,
                                               PrefetchQueue* queue, ServerStreamMetrics* metrics,
                                               std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      queue_(queue),
      metrics_(metrics),
      channel_(std::move(channel)),
      stub_(v1::ActivationService::NewStub(channel_)) {}

ActivationStreamReader::~ActivationStreamReader() { Stop(); }

void ActivationStreamReader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    if (active_ != nullptr) active_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

std::string ActivationStreamReader::furthest_cursor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return furthest_ ? furthest_->ToBytes() : "";
}

ActivationStreamStats ActivationStreamReader::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

bool ActivationStreamReader::Backoff(absl::Duration duration) {
  // A call that failed on a connected channel failed for another reason: wait it out. Otherwise
  // the wait ends as soon as the server listens again.
  const bool connected = channel_->GetState(false) == GRPC_CHANNEL_READY;
  const absl::Time deadline = absl::Now() + duration;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return false;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    // Slices of at most 100 ms, so that Stop is noticed promptly.
    const absl::Duration slice = std::min(left, absl::Milliseconds(100));
    if (connected) {
      std::this_thread::sleep_for(absl::ToChronoNanoseconds(slice));
    } else if (channel_->WaitForConnected(absl::ToChronoTime(absl::Now() + slice))) {
      return true;
    }
  }
}

v1::StreamRequest ActivationStreamReader::Request(int lease) const {
  v1::StreamRequest request;
  request.set_run_id(options_.run_id);
  request.set_config_digest(options_.config_digest);
  request.set_consumer_rank(options_.rank);
  request.set_consumer_count(options_.world_size);
  request.set_consumer_session(options_.session);
  request.set_wire_dtype(stream::ToWire(options_.wire_dtype));
  request.set_batch_size(options_.batch_size);
  request.set_max_batches(lease);
  request.set_generation(options_.generation);
  for (const std::string& cursor : options_.known_cursors) request.add_resume_cursors(cursor);
  std::lock_guard<std::mutex> lock(mutex_);
  request.set_server_incarnation(incarnation_);
  request.set_last_sequence(last_sequence_);
  if (furthest_) request.add_resume_cursors(furthest_->ToBytes());
  return request;
}

absl::Status ActivationStreamReader::Accept(v1::ActivationBatch& batch) {
  const std::string server = absl::StrCat("activation server ", options_.address);
  if (batch.shape_size() != 2 || batch.shape(0) != options_.batch_size ||
      batch.shape(1) != options_.d_in) {
    return absl::FailedPreconditionError(
        absl::StrCat(server, " sent a batch of shape [", absl::StrJoin(batch.shape(), ", "),
                     "], expected [", options_.batch_size, ", ", options_.d_in, "]"));
  }
  absl::StatusOr<config::DType> dtype = stream::FromWire(batch.dtype());
  if (!dtype.ok())
    return absl::FailedPreconditionError(absl::StrCat(server, ": ", dtype.status().message()));
  absl::StatusOr<at::Tensor> rows =
      wire::DecodeActivations(batch.data(), *dtype, options_.batch_size, options_.d_in);
  if (!rows.ok())
    return absl::FailedPreconditionError(absl::StrCat(server, ": ", rows.status().message()));
  absl::StatusOr<data::ShardCursor> frontier =
      data::ShardCursor::FromBytes(batch.frontier_cursor());
  if (!frontier.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(server, " sent a bad frontier cursor: ", frontier.status().message()));
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (batch.server_incarnation() != incarnation_) {
      if (incarnation_ != 0) {
        spdlog::warn("{} restarted (incarnation {:x} -> {:x}); continuing from {}", server,
                     incarnation_, batch.server_incarnation(), frontier->DebugString());
      }
      incarnation_ = batch.server_incarnation();
      last_sequence_ = 0;
    }
    if (batch.sequence() <= last_sequence_) {
      spdlog::warn("{} sent batch {} again; dropped", server, batch.sequence());
      return absl::AlreadyExistsError("duplicate");
    }
    if (batch.sequence() != last_sequence_ + 1) {
      spdlog::error("{} skipped from batch {} to {}", server, last_sequence_, batch.sequence());
    }
    last_sequence_ = batch.sequence();
    if (!furthest_ || frontier->IsAfter(*furthest_)) furthest_ = *frontier;
    ++stats_.batches;
    stats_.activations += options_.batch_size;
    stats_.bytes += static_cast<int64_t>(batch.data().size());
  }
  if (metrics_ != nullptr) {
    metrics_->received_batches->Increment();
    metrics_->received_activations->Increment(static_cast<double>(options_.batch_size));
    metrics_->received_bytes->Increment(static_cast<double>(batch.data().size()));
  }
  StreamedBatch streamed;
  streamed.rows = std::move(*rows);
  streamed.server = options_.server_index;
  streamed.incarnation = batch.server_incarnation();
  streamed.sequence = batch.sequence();
  streamed.stream_offset = batch.stream_offset();
  streamed.resent = batch.resent();
  queue_->Push(std::move(streamed));
  return absl::OkStatus();
}

grpc::Status ActivationStreamReader::Call(int lease, int* received, absl::Duration timeout) {
  grpc::ClientContext context;
  rpc::PrepareCall(&context, options_.security, timeout);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && lease > 0) return grpc::Status(grpc::StatusCode::CANCELLED, "stopping");
    active_ = &context;
  }
  std::unique_ptr<grpc::ClientReader<v1::ActivationBatch>> reader =
      stub_->StreamActivations(&context, Request(lease));
  v1::ActivationBatch batch;
  absl::Status rejected;
  while (reader->Read(&batch)) {
    absl::Status accepted = Accept(batch);
    if (accepted.ok()) {
      ++*received;
    } else if (accepted.code() != absl::StatusCode::kAlreadyExists) {
      rejected = accepted;
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    active_ = nullptr;
  }
  if (!rejected.ok()) return rpc::ToGrpcStatus(rejected);
  return status;
}

void ActivationStreamReader::Loop() {
  const std::string server =
      absl::StrCat("activation server ", options_.address, " (server ", options_.server_index, ")");
  absl::Duration backoff = options_.initial_backoff;
  std::optional<absl::Time> away_since;
  for (;;) {
    const int lease = queue_->Reserve(options_.lease);
    if (lease == 0) {
      // The trainer is done: acknowledge the last batches so the server can free them.
      int ignored = 0;
      bool received_some = false;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        received_some = last_sequence_ > 0;
      }
      if (received_some) Call(0, &ignored, absl::Seconds(2));
      return;
    }
    int received = 0;
    const grpc::Status status = Call(lease, &received, options_.call_timeout);
    queue_->Release(lease - received);
    if (received > 0 || status.ok()) {
      away_since.reset();
      backoff = options_.initial_backoff;
      if (metrics_ != nullptr) {
        metrics_->up->Set(1);
        metrics_->away_seconds->Set(0);
      }
    }
    if (status.ok()) continue;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
    }
    if (metrics_ != nullptr) metrics_->up->Set(0);
    if (!Retryable(status.error_code())) {
      spdlog::error("{}: {}; giving up", server, Describe(status));
      queue_->Fail(
          absl::FailedPreconditionError(absl::StrCat(server, ": ", status.error_message())));
      return;
    }
    const absl::Time now = absl::Now();
    if (!away_since) away_since = now;
    const absl::Duration away = now - *away_since;
    if (metrics_ != nullptr) metrics_->away_seconds->Set(absl::ToDoubleSeconds(away));
    if (away > options_.server_deadline) {
      spdlog::error("{} has been unreachable for {} (last error: {})", server,
                    absl::FormatDuration(away), Describe(status));
      queue_->Fail(absl::UnavailableError(absl::StrCat(
          server, " has been unreachable for ", absl::FormatDuration(away),
          " (longer than --server-deadline ", absl::FormatDuration(options_.server_deadline),
          "; last error: ", status.error_message(),
          "). Restart it (with its --cursor-file it resumes where it stopped) or raise "
          "--server-deadline.")));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.reconnects;
    }
    if (metrics_ != nullptr) metrics_->reconnects->Increment();
    spdlog::warn("{}: stream broke after {} of {} batches ({}); retrying in {}", server, received,
                 lease, Describe(status), absl::FormatDuration(backoff));
    if (!Backoff(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace sae::trainer
