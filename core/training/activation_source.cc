#include "core/training/activation_source.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/data/mixing_buffer.h"
#include "core/io/tensor_io.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace sae::training {
namespace {

constexpr char kCacheFormat[] = "sae-service activation cache v1";

class StoreSource final : public ActivationSource {
 public:
  explicit StoreSource(std::unique_ptr<data::ActivationStore> store) : store_(std::move(store)) {}
  absl::StatusOr<at::Tensor> NextBatch(int64_t n) override { return store_->NextBatch(n); }
  absl::StatusOr<at::Tensor> InitialSample(int64_t n) override { return store_->InitialSample(n); }
  std::string ResumeToken() const override { return store_->resume_point().ToBytes(); }
  int64_t d_in() const override { return store_->d_in(); }
  int64_t tokens_generated() const override { return store_->tokens_generated(); }

 private:
  std::unique_ptr<data::ActivationStore> store_;
};

// Rows of an activation cache in file order, optionally through a mixing buffer.
class CacheSource final : public ActivationSource {
 public:
  static absl::StatusOr<std::unique_ptr<CacheSource>> Open(const config::RunConfig& config,
                                                           const std::string* resume_token) {
    const std::string dir = config.cached_activations_path.value_or("");
    auto text = ReadFile(dir + "/manifest.json");
    if (!text.ok()) {
      return config::ConfigKeyError(
          config, "cached_activations_path",
          absl::StrCat(text.status().message(),
                       " (write a cache with `saectl cache run.yaml --out DIR`)"));
    }
    nlohmann::json m = nlohmann::json::parse(*text, nullptr, false);
    if (m.is_discarded() || m.value("format", "") != kCacheFormat || !m.contains("chunks")) {
      return config::ConfigKeyError(
          config, "cached_activations_path",
          absl::StrCat(dir, "/manifest.json is not an activation cache manifest"));
    }
    std::unique_ptr<CacheSource> source(new CacheSource());
    source->dir_ = dir;
    source->d_in_ = m["d_in"].get<int64_t>();
    if (config.d_in && *config.d_in != source->d_in_) {
      return config::ConfigKeyError(config, "d_in",
                                    absl::StrCat("is ", *config.d_in, " but the cache in ", dir,
                                                 " holds activations of width ", source->d_in_));
    }
    if (m.value("hook_point", config.hook_point) != config.hook_point) {
      spdlog::warn("activation cache {} was written for hook {}, the run trains on {}", dir,
                   m.value("hook_point", ""), config.hook_point);
    }
    for (const auto& c : m["chunks"]) {
      source->chunks_.push_back({c["file"].get<std::string>(), c["rows"].get<int64_t>()});
    }
    if (source->chunks_.empty()) {
      return config::ConfigKeyError(config, "cached_activations_path",
                                    absl::StrCat(dir, " holds no activations"));
    }
    if (resume_token != nullptr) {
      if (resume_token->size() < 2 || (*resume_token)[0] != 'C') {
        return absl::InvalidArgumentError("resume token does not belong to an activation cache");
      }
      auto parts = nlohmann::json::parse(resume_token->substr(1), nullptr, false);
      if (parts.is_discarded())
        return absl::InvalidArgumentError("corrupt activation-cache resume token");
      source->chunk_ = parts["chunk"].get<int64_t>();
      source->row_ = parts["row"].get<int64_t>();
      source->epoch_ = parts.value("epoch", int64_t{0});
    }
    if (config.shuffle) {
      data::MixingBufferOptions b;
      b.capacity = config.n_batches_in_buffer * config.store_batch_size * config.context_size;
      b.d_in = source->d_in_;
      b.shuffle = true;
      b.seed = static_cast<uint64_t>(config.seed);
      SAE_ASSIGN_OR_RETURN(source->buffer_, data::MixingBuffer::Create(b));
    }
    return source;
  }

  absl::StatusOr<at::Tensor> NextBatch(int64_t n) override {
    if (!buffer_) return ReadRows(n);
    for (;;) {
      if (pending_.defined() && pending_.size(0) > 0) {
        SAE_ASSIGN_OR_RETURN(int64_t stored, buffer_->AddFor(pending_, absl::ZeroDuration()));
        pending_ = pending_.narrow(0, stored, pending_.size(0) - stored);
      }
      auto batch = buffer_->TakeFor(n, absl::ZeroDuration());
      if (batch.ok()) return batch;
      if (batch.status().code() != absl::StatusCode::kDeadlineExceeded) return batch.status();
      SAE_ASSIGN_OR_RETURN(at::Tensor more, ReadRows(std::max<int64_t>(n, 4096)));
      pending_ = pending_.defined() && pending_.size(0) > 0 ? at::cat({pending_, more}) : more;
    }
  }

  absl::StatusOr<at::Tensor> InitialSample(int64_t n) override {
    // The first rows of the cache, without moving the stream.
    int64_t chunk = chunk_, row = row_, epoch = epoch_;
    auto sample = ReadRows(n);
    chunk_ = chunk, row_ = row, epoch_ = epoch;
    loaded_index_ = -1;
    return sample;
  }

  std::string ResumeToken() const override {
    return "C" + nlohmann::json{{"chunk", chunk_}, {"row", row_}, {"epoch", epoch_}}.dump();
  }
  int64_t d_in() const override { return d_in_; }
  int64_t tokens_generated() const override { return 0; }

 private:
  absl::StatusOr<at::Tensor> ReadRows(int64_t n) {
    std::vector<at::Tensor> parts;
    int64_t have = 0;
    while (have < n) {
      if (loaded_index_ != chunk_) {
        const std::string path = absl::StrCat(dir_, "/", chunks_[chunk_].file);
        SAE_ASSIGN_OR_RETURN(auto tensors, io::LoadTensors(path));
        auto it = tensors.find("activations");
        if (it == tensors.end() || it->second.dim() != 2 || it->second.size(1) != d_in_) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": expected tensor 'activations' [N, ", d_in_, "]"));
        }
        loaded_ = it->second.to(at::kFloat);
        loaded_index_ = chunk_;
      }
      int64_t take = std::min(n - have, loaded_.size(0) - row_);
      parts.push_back(loaded_.narrow(0, row_, take));
      have += take;
      row_ += take;
      if (row_ >= loaded_.size(0)) {
        row_ = 0;
        if (++chunk_ >= static_cast<int64_t>(chunks_.size())) {
          chunk_ = 0;
          ++epoch_;
          spdlog::warn("activation cache {} exhausted: starting epoch {}", dir_, epoch_);
        }
      }
    }
    return at::cat(parts);
  }

  struct Chunk {
    std::string file;
    int64_t rows;
  };
  std::string dir_;
  int64_t d_in_ = 0;
  std::vector<Chunk> chunks_;
  int64_t chunk_ = 0, row_ = 0, epoch_ = 0;
  int64_t loaded_index_ = -1;
  at::Tensor loaded_;
  std::unique_ptr<data::MixingBuffer> buffer_;
  at::Tensor pending_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ActivationSource>> OpenActivationSource(
    const config::RunConfig& config, const RunAssets& assets, const std::string* resume_token,
    const std::vector<model::HookPoint>& more_hooks) {
  if (config.use_cached_activations) {
    if (!more_hooks.empty()) {
      return config::ConfigKeyError(config, "use_cached_activations",
                                    "an activation cache holds one hook; train on one hook");
    }
    SAE_ASSIGN_OR_RETURN(auto cache, CacheSource::Open(config, resume_token));
    return std::unique_ptr<ActivationSource>(std::move(cache));
  }
  if (!assets.model || !assets.dataset) {
    return absl::FailedPreconditionError("generating activations needs the model and the dataset");
  }
  data::ActivationStoreOptions options = ActivationStoreOptionsFor(config, assets.hook);
  options.more_hooks = more_hooks;
  std::unique_ptr<data::ActivationStore> store;
  if (resume_token != nullptr) {
    SAE_ASSIGN_OR_RETURN(data::ActivationResumePoint point,
                         data::ActivationResumePoint::FromBytes(*resume_token));
    SAE_ASSIGN_OR_RETURN(store, data::ActivationStore::Create(assets.model.get(), assets.dataset, 0,
                                                              1, options, &point));
  } else {
    SAE_ASSIGN_OR_RETURN(
        store, data::ActivationStore::Create(assets.model.get(), assets.dataset, 0, 1, options));
  }
  return std::unique_ptr<ActivationSource>(new StoreSource(std::move(store)));
}

absl::Status WriteActivationCache(ActivationSource& source, const config::RunConfig& config,
                                  int64_t rows, int64_t chunk_rows, const std::string& dir) {
  SAE_RETURN_IF_ERROR(MakeDirectories(dir));
  nlohmann::json chunks = nlohmann::json::array();
  int64_t written = 0;
  for (int index = 0; written < rows; ++index) {
    const int64_t n = std::min(chunk_rows, rows - written);
    // Taken in training-batch pieces, which the run's mixing buffer can always serve.
    std::vector<at::Tensor> pieces;
    for (int64_t have = 0; have < n;) {
      const int64_t piece = std::min(n - have, config.train_batch_size);
      SAE_ASSIGN_OR_RETURN(at::Tensor part, source.NextBatch(piece));
      pieces.push_back(part);
      have += piece;
    }
    at::Tensor batch = at::cat(pieces);
    const std::string file = absl::StrFormat("chunk_%05d.safetensors", index);
    SAE_RETURN_IF_ERROR(io::SaveTensors(absl::StrCat(dir, "/", file), {{"activations", batch}},
                                        {{"format", "pt"}}));
    chunks.push_back({{"file", file}, {"rows", n}});
    written += n;
  }
  nlohmann::json manifest = {
      {"format", kCacheFormat},
      {"d_in", source.d_in()},
      {"dtype", "float32"},
      {"rows", written},
      {"hook_point", config.hook_point},
      {"hook_point_head_index", config.hook_point_head_index
                                    ? nlohmann::json(*config.hook_point_head_index)
                                    : nlohmann::json()},
      {"model_name", config.model_name},
      {"model_path", config.model_path.value_or("")},
      {"dataset_path", config.dataset_path.value_or("")},
      {"context_size", config.context_size},
      {"shuffled", config.shuffle},
      {"chunks", chunks},
  };
  return WriteFileAtomically(dir + "/manifest.json", manifest.dump(2) + "\n");
}

}  // namespace sae::training
