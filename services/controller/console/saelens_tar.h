// The console's checkpoint download: a checkpoint archive ("SAECKPT1",
// services/common/checkpoint_archive.h), fed in pieces as its chunks are read from the store,
// turned into a POSIX ustar archive of the SAELens folder inside it, written as it goes (memory:
// one archive header, never a file).
//
// The SAELens folder is the folder of the first `cfg.json` in archive order: `cfg.json` itself
// for a final SAE, `sae/cfg.json` for a trainer checkpoint (core/training/checkpoint.h). The tar
// holds that file and the files after it in the same folder (cfg.json sorts before
// sae_weights.safetensors and sparsity.safetensors), under `folder`/ with their names.
//
// Not thread-safe.
#ifndef SAE_SERVICES_CONTROLLER_CONSOLE_SAELENS_TAR_H_
#define SAE_SERVICES_CONTROLLER_CONSOLE_SAELENS_TAR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace sae::controller {

class SaeLensTar {
 public:
  // Files go into the tar under `folder` (e.g. "tiny-x7k2p-step-60"): no '/' at either end.
  explicit SaeLensTar(std::string folder);

  // Appends to `out` the tar bytes that `piece`, the next bytes of the archive, completes.
  // InvalidArgument when the archive is malformed (bad magic, a path longer than 4096 bytes).
  absl::Status Feed(absl::string_view piece, std::string* out);

  // Appends the end of the tar (two zero blocks). DataLoss when the archive ended inside a file
  // or a header; NotFound when it held no cfg.json.
  absl::Status Finish(std::string* out);

  // Files written into the tar so far.
  int files() const { return files_; }

 private:
  enum class Part { kMagic, kPathLength, kPath, kSize, kData };
  // Starts the file just described (path_, size_): writes its tar header when it is included.
  absl::Status BeginFile(std::string* out);

  const std::string folder_;
  Part part_ = Part::kMagic;
  std::string pending_;  // bytes of the header field being read
  uint64_t path_length_ = 0;
  std::string path_;
  uint64_t remaining_ = 0;  // bytes of the current file still to come
  uint64_t size_ = 0;
  bool included_ = false;
  std::optional<std::string> sae_dir_;  // "" or "sae/" once the first cfg.json was seen
  int files_ = 0;
};

}  // namespace sae::controller

#endif  // SAE_SERVICES_CONTROLLER_CONSOLE_SAELENS_TAR_H_
