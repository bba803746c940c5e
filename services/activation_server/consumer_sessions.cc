#include "services/activation_server/consumer_sessions.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace sae::activation_server {

ConsumerSessions::ConsumerSessions(uint64_t incarnation, ServerMetrics* metrics)
    : incarnation_(incarnation), metrics_(metrics) {}

void ConsumerSessions::DropUnacknowledged(Session& session) {
  int64_t rows = 0;
  for (const auto& batch : session.unacknowledged) {
    rows += batch->shape_size() > 0 ? batch->shape(0) : 0;
  }
  if (rows > 0) {
    spdlog::warn(
        "dropping {} activations ({} batches) that a previous consumer session never "
        "acknowledged",
        rows, session.unacknowledged.size());
    if (metrics_ != nullptr) metrics_->dropped_activations->Increment(static_cast<double>(rows));
  }
  int64_t bytes = 0;
  for (const auto& batch : session.unacknowledged)
    bytes += static_cast<int64_t>(batch->data().size());
  CountHeld(-bytes);
  session.unacknowledged.clear();
}

void ConsumerSessions::CountHeld(int64_t delta) {
  unacknowledged_bytes_ += delta;
  if (metrics_ != nullptr) {
    metrics_->unacknowledged_bytes->Set(static_cast<double>(unacknowledged_bytes_));
  }
}

int64_t ConsumerSessions::unacknowledged_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return unacknowledged_bytes_;
}

absl::StatusOr<std::unique_ptr<ConsumerCall>> ConsumerSessions::Attach(
    const v1::StreamRequest& request, grpc::ServerContext* context, absl::Duration wait) {
  const int rank = request.consumer_rank();
  std::unique_lock<std::mutex> lock(mutex_);
  Session& session = sessions_[rank];
  if (session.call_id != 0) {
    // The consumer called again while its previous call is still attached (its connection
    // broke without this server noticing yet): end that call first.
    const uint64_t previous = session.call_id;
    session.context->TryCancel();
    const bool detached = detached_.wait_for(lock, absl::ToChronoNanoseconds(wait),
                                             [&] { return sessions_[rank].call_id != previous; });
    if (!detached) {
      return absl::AbortedError(
          absl::StrCat("the previous call of consumer ", rank, " is still attached; try again"));
    }
    if (session.call_id != 0) {
      return absl::AbortedError(
          absl::StrCat("another call of consumer ", rank, " attached first; try again"));
    }
  }
  if (session.id != request.consumer_session() || session.count != request.consumer_count()) {
    DropUnacknowledged(session);
    session.id = request.consumer_session();
    session.count = request.consumer_count();
    session.next_sequence = 1;
  } else if (request.server_incarnation() == incarnation_) {
    uint64_t last = request.last_sequence();
    if (last >= session.next_sequence) {
      spdlog::warn("consumer {} acknowledges batch {} but only {} were sent", rank, last,
                   session.next_sequence - 1);
    }
    while (!session.unacknowledged.empty() && session.unacknowledged.front()->sequence() <= last) {
      CountHeld(-static_cast<int64_t>(session.unacknowledged.front()->data().size()));
      session.unacknowledged.pop_front();
    }
  }
  session.call_id = next_call_id_++;
  session.context = context;
  ++attached_;
  if (metrics_ != nullptr) metrics_->active_consumers->Set(attached_);
  return std::unique_ptr<ConsumerCall>(new ConsumerCall(this, rank, session.call_id));
}

void ConsumerSessions::Detach(int rank, uint64_t call_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    Session& session = sessions_[rank];
    if (session.call_id == call_id) {
      session.call_id = 0;
      session.context = nullptr;
    }
    --attached_;
    if (metrics_ != nullptr) metrics_->active_consumers->Set(attached_);
  }
  detached_.notify_all();
}

int ConsumerSessions::sessions() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(sessions_.size());
}

int ConsumerSessions::attached() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return attached_;
}

ConsumerCall::~ConsumerCall() { sessions_->Detach(rank_, call_id_); }

std::vector<const v1::ActivationBatch*> ConsumerCall::Unacknowledged() {
  std::lock_guard<std::mutex> lock(sessions_->mutex_);
  std::vector<const v1::ActivationBatch*> out;
  for (auto& batch : sessions_->sessions_[rank_].unacknowledged) {
    batch->set_resent(true);
    out.push_back(batch.get());
  }
  return out;
}

const v1::ActivationBatch* ConsumerCall::Keep(std::unique_ptr<v1::ActivationBatch> batch) {
  std::lock_guard<std::mutex> lock(sessions_->mutex_);
  ConsumerSessions::Session& session = sessions_->sessions_[rank_];
  batch->set_server_incarnation(sessions_->incarnation_);
  batch->set_sequence(session.next_sequence++);
  sessions_->CountHeld(static_cast<int64_t>(batch->data().size()));
  session.unacknowledged.push_back(std::move(batch));
  return session.unacknowledged.back().get();
}

bool ConsumerCall::replaced() const {
  std::lock_guard<std::mutex> lock(sessions_->mutex_);
  return sessions_->sessions_[rank_].call_id != call_id_;
}

}  // namespace sae::activation_server
