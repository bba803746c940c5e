// The files of a run's stored feature dashboards (`saectl features RUN`, docs/features.md), read
// out of their archive in the controller's store without unpacking it: what the console serves at
// /api/runs/ID/features/PATH.
//
// The archive is a checkpoint archive ("SAECKPT1", services/common/checkpoint_archive.h) stored
// as chunks. Index() walks its file headers, reading only the chunks that hold one (a file's
// bytes are skipped by its size), so indexing costs about one chunk read per file; Read() then
// reads the chunks a byte range covers. Every chunk read is checked against its SHA-256 in the
// manifest.
//
// Thread safety: a FeatureFiles is immutable after Index(); Read may be called from any thread.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_FEATURE_FILES_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_FEATURE_FILES_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sae/v1/controller.pb.h"

namespace sae::controller {

class FeatureFiles {
 public:
  // Chunk `index` of the manifest's archive (Controller::ReadChunk).
  using ChunkReader = std::function<absl::StatusOr<std::string>(int32_t index)>;

  // Indexes the archive of `manifest`. DataLoss when it is malformed, truncated or a chunk does
  // not match its digest.
  static absl::StatusOr<FeatureFiles> Index(const v1::CheckpointManifest& manifest,
                                            const ChunkReader& read);

  // Size of file `path` ("index.html", "data/chunk-00000.js"), or -1 when the archive has none.
  int64_t Size(const std::string& path) const;

  // Up to `max_bytes` bytes of file `path` from `offset` within it: at most to the end of the
  // chunk that holds `offset` (so a large file is served a chunk at a time). NotFound for a
  // missing file; OutOfRange for an offset past its end; DataLoss for a damaged chunk.
  absl::StatusOr<std::string> Read(const std::string& path, int64_t offset, int64_t max_bytes,
                                   const ChunkReader& read) const;

  const v1::CheckpointManifest& manifest() const { return manifest_; }
  // The files' paths, in archive order.
  std::vector<std::string> Paths() const;

 private:
  struct Entry {
    int64_t offset = 0;  // of the file's first byte in the archive
    int64_t size = 0;
    int order = 0;
  };
  // The chunk holding archive byte `offset`, checked.
  absl::StatusOr<std::string> Chunk(int32_t index, const ChunkReader& read) const;
  int32_t ChunkOf(int64_t offset) const;

  v1::CheckpointManifest manifest_;
  std::vector<int64_t> chunk_starts_;  // archive offset of each chunk's first byte
  std::map<std::string, Entry> files_;
};

// The content type the console serves a dashboard file with, by its extension.
const char* FeatureFileContentType(const std::string& path);

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_FEATURE_FILES_H_
