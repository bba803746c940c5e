#include "services/controller/console/feature_files.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/util/status.h"
#include "services/common/checkpoint_archive.h"
#include "services/common/sha256.h"

namespace sae::controller {
namespace {

// Reads the archive's bytes in order, a chunk at a time, skipping what is not needed.
class ArchiveCursor {
 public:
  ArchiveCursor(const FeatureFiles::ChunkReader& read, const std::vector<int64_t>& starts,
                const v1::CheckpointManifest& manifest)
      : read_(read), starts_(starts), manifest_(manifest) {}

  // The next `n` bytes into `out`.
  absl::Status Take(int64_t n, std::string* out) {
    out->clear();
    while (n > 0) {
      SAE_RETURN_IF_ERROR(Load());
      const int64_t available = static_cast<int64_t>(chunk_.size()) - (offset_ - starts_[index_]);
      const int64_t take = std::min(n, available);
      out->append(chunk_, static_cast<size_t>(offset_ - starts_[index_]),
                  static_cast<size_t>(take));
      offset_ += take;
      n -= take;
    }
    return absl::OkStatus();
  }
  void Skip(int64_t n) { offset_ += n; }
  int64_t offset() const { return offset_; }

 private:
  // Makes chunk_ the chunk that holds offset_.
  absl::Status Load() {
    auto after = std::upper_bound(starts_.begin(), starts_.end(), offset_);
    const int32_t index = static_cast<int32_t>(after - starts_.begin()) - 1;
    if (index < 0 || index >= manifest_.chunk_count() || offset_ >= manifest_.total_bytes()) {
      return absl::DataLossError("the feature archive ends inside a file header");
    }
    if (index == index_) return absl::OkStatus();
    SAE_ASSIGN_OR_RETURN(chunk_, read_(index));
    if (rpc::Sha256::Of(chunk_) != manifest_.chunks(index).sha256()) {
      return absl::DataLossError(absl::StrCat("chunk ", index, " of the feature archive does not "
                                              "match its SHA-256"));
    }
    index_ = index;
    return absl::OkStatus();
  }

  const FeatureFiles::ChunkReader& read_;
  const std::vector<int64_t>& starts_;
  const v1::CheckpointManifest& manifest_;
  int64_t offset_ = 0;
  int32_t index_ = -1;
  std::string chunk_;
};

uint64_t LittleEndian(const std::string& bytes) {
  uint64_t value = 0;
  for (size_t i = bytes.size(); i-- > 0;) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

}  // namespace

absl::StatusOr<FeatureFiles> FeatureFiles::Index(const v1::CheckpointManifest& manifest,
                                                 const ChunkReader& read) {
  FeatureFiles files;
  files.manifest_ = manifest;
  if (manifest.chunks_size() != manifest.chunk_count()) {
    return absl::DataLossError("the feature archive's manifest lists no chunk digests");
  }
  int64_t start = 0;
  for (const v1::ChunkDigest& chunk : manifest.chunks()) {
    files.chunk_starts_.push_back(start);
    start += chunk.size();
  }
  if (start != manifest.total_bytes()) {
    return absl::DataLossError("the feature archive's chunks do not add up to its size");
  }
  ArchiveCursor cursor(read, files.chunk_starts_, manifest);
  std::string bytes;
  SAE_RETURN_IF_ERROR(cursor.Take(static_cast<int64_t>(client::kArchiveMagic.size()), &bytes));
  if (bytes != client::kArchiveMagic) {
    return absl::DataLossError("the feature archive does not start with SAECKPT1");
  }
  int order = 0;
  while (cursor.offset() < manifest.total_bytes()) {
    SAE_RETURN_IF_ERROR(cursor.Take(4, &bytes));
    const uint64_t length = LittleEndian(bytes);
    if (length == 0 || length > 4096) {
      return absl::DataLossError("a bad path in the feature archive");
    }
    std::string path;
    SAE_RETURN_IF_ERROR(cursor.Take(static_cast<int64_t>(length), &path));
    SAE_RETURN_IF_ERROR(cursor.Take(8, &bytes));
    const int64_t size = static_cast<int64_t>(LittleEndian(bytes));
    if (size < 0 || cursor.offset() + size > manifest.total_bytes()) {
      return absl::DataLossError(
          absl::StrCat("file ", path, " runs past the feature archive's end"));
    }
    files.files_[path] = Entry{cursor.offset(), size, order++};
    cursor.Skip(size);
  }
  return files;
}

int64_t FeatureFiles::Size(const std::string& path) const {
  auto it = files_.find(path);
  return it == files_.end() ? -1 : it->second.size;
}

std::vector<std::string> FeatureFiles::Paths() const {
  std::vector<std::string> paths(files_.size());
  for (const auto& [path, entry] : files_) paths[static_cast<size_t>(entry.order)] = path;
  return paths;
}

int32_t FeatureFiles::ChunkOf(int64_t offset) const {
  auto after = std::upper_bound(chunk_starts_.begin(), chunk_starts_.end(), offset);
  return static_cast<int32_t>(after - chunk_starts_.begin()) - 1;
}

absl::StatusOr<std::string> FeatureFiles::Chunk(int32_t index, const ChunkReader& read) const {
  SAE_ASSIGN_OR_RETURN(std::string chunk, read(index));
  if (rpc::Sha256::Of(chunk) != manifest_.chunks(index).sha256()) {
    return absl::DataLossError(
        absl::StrCat("chunk ", index, " of the feature archive does not match its SHA-256"));
  }
  return chunk;
}

absl::StatusOr<std::string> FeatureFiles::Read(const std::string& path, int64_t offset,
                                               int64_t max_bytes, const ChunkReader& read) const {
  auto it = files_.find(path);
  if (it == files_.end()) {
    return absl::NotFoundError(absl::StrCat("the feature dashboards hold no file ", path));
  }
  const Entry& entry = it->second;
  if (offset < 0 || offset > entry.size) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " is past the end of ", path));
  }
  const int64_t start = entry.offset + offset;
  const int64_t want = std::min(max_bytes, entry.size - offset);
  if (want <= 0) return std::string();
  const int32_t index = ChunkOf(start);
  SAE_ASSIGN_OR_RETURN(std::string chunk, Chunk(index, read));
  const int64_t within = start - chunk_starts_[static_cast<size_t>(index)];
  const int64_t take = std::min(want, static_cast<int64_t>(chunk.size()) - within);
  return chunk.substr(static_cast<size_t>(within), static_cast<size_t>(take));
}

const char* FeatureFileContentType(const std::string& path) {
  if (absl::EndsWith(path, ".html")) return "text/html; charset=utf-8";
  if (absl::EndsWith(path, ".js")) return "text/javascript; charset=utf-8";
  if (absl::EndsWith(path, ".css")) return "text/css; charset=utf-8";
  if (absl::EndsWith(path, ".json")) return "application/json; charset=utf-8";
  if (absl::EndsWith(path, ".jsonl")) return "application/x-ndjson; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace sae::controller
