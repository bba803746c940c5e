#include "core/data/activation_store.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/util/status.h"
#include "spdlog/spdlog.h"

namespace sae::data {
namespace {

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool ReadVarint(absl::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    uint8_t byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

std::string ActivationResumePoint::ToBytes() const {
  std::string out(1, '\x01');  // version
  AppendVarint(&out, static_cast<uint64_t>(skip_rows));
  out += cursor.ToBytes();
  return out;
}

absl::StatusOr<ActivationResumePoint> ActivationResumePoint::FromBytes(absl::string_view bytes) {
  if (bytes.empty() || bytes[0] != '\x01') {
    return absl::InvalidArgumentError("activation resume point: unknown version");
  }
  bytes.remove_prefix(1);
  uint64_t skip = 0;
  if (!ReadVarint(&bytes, &skip)) {
    return absl::InvalidArgumentError("activation resume point: truncated");
  }
  ActivationResumePoint point;
  point.skip_rows = static_cast<int64_t>(skip);
  SAE_ASSIGN_OR_RETURN(point.cursor,
                       ShardCursor::FromBytes(std::string_view(bytes.data(), bytes.size())));
  return point;
}

absl::StatusOr<std::unique_ptr<ActivationStore>> ActivationStore::Create(
    const model::Gpt2Model* model, std::shared_ptr<const Dataset> dataset, uint32_t shard_index,
    uint32_t shard_count, const ActivationStoreOptions& options,
    const ActivationResumePoint* resume) {
  std::unique_ptr<ActivationStore> store(new ActivationStore());
  store->model_ = model;
  store->options_ = options;
  const model::ModelDims dims = model->config().dims();
  if (options.head_index >= 0 &&
      (!options.hook.is_per_head() || options.head_index >= dims.n_head)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hook_point_head_index ", options.head_index,
                     " needs a per-head hook (q, k, v, z) and a head below ", dims.n_head));
  }
  store->d_in_ = options.hook.ActivationSize(dims, options.head_index >= 0);
  for (const model::HookPoint& hook : options.more_hooks) {
    store->d_in_ += hook.ActivationSize(dims, options.head_index >= 0 && hook.is_per_head());
  }
  if (options.store_batch_size <= 0) {
    return absl::InvalidArgumentError("store_batch_size must be positive");
  }
  if (resume != nullptr) {
    SAE_ASSIGN_OR_RETURN(store->shard_, ContextShard::Resume(dataset, resume->cursor));
    store->skip_rows_left_ = resume->skip_rows;
    store->history_base_rows_ = resume->skip_rows;
  } else {
    SAE_ASSIGN_OR_RETURN(store->shard_, ContextShard::Open(dataset, shard_index, shard_count));
  }
  store->context_size_ = store->shard_->context_size();
  if (store->context_size_ > model->config().n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("context_size ", store->context_size_,
                                                   " exceeds the model's n_ctx of ",
                                                   model->config().n_positions));
  }
  MixingBufferOptions buffer = options.buffer;
  buffer.d_in = store->d_in_;
  SAE_ASSIGN_OR_RETURN(store->buffer_, MixingBuffer::Create(buffer));
  return store;
}

ActivationStore::~ActivationStore() {
  StopBackground();
  if (buffer_) buffer_->Close();
}

absl::StatusOr<at::Tensor> ActivationStore::Forward(const std::vector<int32_t>& contexts,
                                                    int64_t count) {
  at::Tensor tokens =
      at::from_blob(const_cast<int32_t*>(contexts.data()), {count, context_size_}, at::kInt)
          .to(at::kLong);
  model::ForwardRequest request;
  request.capture = {options_.hook};
  request.capture.insert(request.capture.end(), options_.more_hooks.begin(),
                         options_.more_hooks.end());
  SAE_ASSIGN_OR_RETURN(model::ForwardResult result, model_->Forward(tokens, request));
  std::vector<at::Tensor> columns;
  for (const model::HookPoint& hook : request.capture) {
    at::Tensor acts = result.activations.at(hook.Name());  // (B,T,...)
    if (hook.is_per_head() && options_.head_index >= 0) {
      acts = acts.select(2, options_.head_index);  // (B,T,d_head)
    }
    columns.push_back(acts.reshape({count * context_size_, -1}));
  }
  if (columns.size() == 1) return columns.front();
  return at::cat(columns, 1);  // (B*T, sum of the hooks' widths)
}

absl::Status ActivationStore::Generate() {
  std::vector<int32_t> contexts;
  {
    std::lock_guard<std::mutex> lock(shard_mutex_);
    ShardCursor before = shard_->cursor();
    SAE_RETURN_IF_ERROR(shard_->NextBatch(options_.store_batch_size, &contexts));
    if (!options_.buffer.shuffle) {
      // Stream rows (skipped ones included) produced before this forward.
      history_.emplace_back(rows_generated_ + rows_skipped_, before);
    }
  }
  const auto forward_start = std::chrono::steady_clock::now();
  SAE_ASSIGN_OR_RETURN(at::Tensor rows, Forward(contexts, options_.store_batch_size));
  if (options_.on_forward) {
    options_.on_forward(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - forward_start).count(),
        options_.store_batch_size);
  }
  contexts_generated_.fetch_add(options_.store_batch_size);
  if (skip_rows_left_ > 0) {
    int64_t drop = std::min<int64_t>(skip_rows_left_, rows.size(0));
    rows = rows.narrow(0, drop, rows.size(0) - drop);
    skip_rows_left_ -= drop;
    rows_skipped_ += drop;
  }
  rows_generated_ += rows.size(0);
  pending_ = pending_.defined() && pending_.size(0) > 0 ? at::cat({pending_, rows}) : rows;
  return absl::OkStatus();
}

absl::Status ActivationStore::AddPending(bool block) {
  while (pending_.defined() && pending_.size(0) > 0) {
    absl::Duration wait = block ? absl::Milliseconds(100) : absl::ZeroDuration();
    SAE_ASSIGN_OR_RETURN(int64_t stored, buffer_->AddFor(pending_, wait));
    pending_ = pending_.narrow(0, stored, pending_.size(0) - stored);
    if (!block || stop_.load()) break;
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> ActivationStore::NextBatch(int64_t n) {
  for (;;) {
    SAE_RETURN_IF_ERROR(AddPending(/*block=*/false));
    auto batch = buffer_->TakeFor(n, absl::ZeroDuration());
    if (batch.ok()) return batch->to(at::kFloat);
    if (batch.status().code() != absl::StatusCode::kDeadlineExceeded) return batch.status();
    if (pending_.defined() && pending_.size(0) > 0 &&
        buffer_->fill().stored >= buffer_->options().capacity) {
      return absl::InternalError("mixing buffer is full but cannot serve a batch");
    }
    SAE_RETURN_IF_ERROR(Generate());
  }
}

absl::StatusOr<at::Tensor> ActivationStore::InitialSample(int64_t n) {
  if (buffer_->fill().served_total > 0) {
    return absl::FailedPreconditionError("InitialSample must come before any batch is served");
  }
  std::vector<at::Tensor> rows;
  int64_t have = pending_.defined() ? pending_.size(0) : 0;
  if (have > 0) rows.push_back(pending_.clone());
  while (have < n) {
    int64_t before = pending_.defined() ? pending_.size(0) : 0;
    SAE_RETURN_IF_ERROR(Generate());
    at::Tensor fresh = pending_.narrow(0, before, pending_.size(0) - before);
    rows.push_back(fresh.clone());
    have += fresh.size(0);
    SAE_RETURN_IF_ERROR(AddPending(/*block=*/false));
  }
  return at::cat(rows).narrow(0, 0, n).to(at::kFloat);
}

void ActivationStore::StartBackground() {
  stop_ = false;
  background_ = std::thread([this] {
    absl::Status status;
    while (!stop_.load()) {
      status = Generate();
      if (status.ok()) status = AddPending(/*block=*/true);
      if (!status.ok()) break;
    }
    if (!status.ok() && status.code() != absl::StatusCode::kCancelled) {
      spdlog::error("activation generation stopped: {}", status.ToString());
      {
        std::lock_guard<std::mutex> lock(status_mutex_);
        background_status_ = status;
      }
      buffer_->Close();
    }
  });
}

void ActivationStore::StopBackground() {
  stop_ = true;
  if (background_.joinable()) background_.join();
}

absl::Status ActivationStore::background_status() const {
  std::lock_guard<std::mutex> lock(status_mutex_);
  return background_status_;
}

ShardCursor ActivationStore::frontier() const {
  std::lock_guard<std::mutex> lock(shard_mutex_);
  return shard_->cursor();
}

ActivationResumePoint ActivationStore::resume_point() const {
  std::lock_guard<std::mutex> lock(shard_mutex_);
  ActivationResumePoint point;
  if (options_.buffer.shuffle) {
    point.cursor = shard_->cursor();
    return point;
  }
  // Stream rows counted from the position this store started at (skipped rows included).
  const int64_t served = history_base_rows_ + buffer_->fill().served_total;
  if (history_.empty()) {
    point.cursor = shard_->cursor();
    point.skip_rows = skip_rows_left_;
    return point;
  }
  auto best = history_.begin();
  for (auto it = history_.begin(); it != history_.end() && it->first <= served; ++it) best = it;
  point.cursor = best->second;
  point.skip_rows = served - best->first;
  // Forwards served completely are no longer needed.
  while (history_.size() > 1 && std::next(history_.begin())->first <= served) history_.pop_front();
  return point;
}

}  // namespace sae::data
