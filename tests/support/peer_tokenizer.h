// Test support: js-tiktoken's r50k_base encoding (GPT-2's), run through Node.js: the peer that
// the tests check our tokenizer against and that the benchmark measures it beside.
#ifndef SAE_TESTS_SUPPORT_PEER_TOKENIZER_H_
#define SAE_TESTS_SUPPORT_PEER_TOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace sae::support {

// tokenizer::SaeCacheDir() + "/npm/node_modules", where scripts/fetch-assets.sh installs js-tiktoken.
std::string DefaultNodeModulesDir();

// The checksum the peer reports for its ids: h = h * 31 + id, modulo 2^32.
uint32_t TokenChecksum(absl::Span<const int32_t> ids);

class JsTiktokenPeer {
 public:
  // FailedPrecondition, saying what to install, when `node` is not on PATH or js-tiktoken is not
  // in `node_modules_dir`.
  static absl::StatusOr<JsTiktokenPeer> Find(
      std::string node_modules_dir = DefaultNodeModulesDir());

  // The ids js-tiktoken gives each of `texts` (valid UTF-8), "<|endoftext|>" allowed as the
  // special token. One node process for all of them.
  absl::StatusOr<std::vector<std::vector<int32_t>>> Encode(
      const std::vector<std::string>& texts) const;

  struct Throughput {
    int64_t bytes = 0;      // size of the file
    int64_t runs = 0;       // timed encodings of the whole file (after one warm-up)
    double seconds = 0;     // time of the timed runs
    int64_t tokens = 0;     // ids in one encoding
    uint32_t checksum = 0;  // TokenChecksum of those ids
    double megabytes_per_second() const {
      return runs * static_cast<double>(bytes) / seconds / 1e6;
    }
  };

  // Times js-tiktoken encoding the file at `text_path` (read as UTF-8), for at least
  // `min_seconds` after one warm-up.
  absl::StatusOr<Throughput> MeasureThroughput(const std::string& text_path,
                                               double min_seconds) const;

 private:
  explicit JsTiktokenPeer(std::string node_modules_dir)
      : node_modules_dir_(std::move(node_modules_dir)) {}

  // Runs `node <script> <mode> <node_modules_dir> <args...>`; its stderr becomes the message of
  // the error when it fails.
  absl::Status RunScript(const std::string& mode, const std::vector<std::string>& args) const;

  std::string node_modules_dir_;
};

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_PEER_TOKENIZER_H_
