#include "support/peer_tokenizer.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/tokenizer/cache_dir.h"
#include "core/util/files.h"
#include "core/util/status.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace sae::support {
namespace {

// Absolute path of js_tiktoken_peer.cjs, set by tests/support/CMakeLists.txt.
constexpr const char* kPeerScript = SAE_JS_TIKTOKEN_PEER_SCRIPT;

bool IsExecutableOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// A folder under the system's temporary folder, removed with everything in it on destruction.
class TemporaryFolder {
 public:
  static absl::StatusOr<TemporaryFolder> Create() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "sae-tokenizer-peer-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return ErrnoStatus("cannot create temporary folder", pattern, errno);
    }
    return TemporaryFolder(std::move(pattern));
  }
  TemporaryFolder(TemporaryFolder&& other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  ~TemporaryFolder() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  std::string File(absl::string_view name) const { return absl::StrCat(path_, "/", name); }

 private:
  explicit TemporaryFolder(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

absl::StatusOr<nlohmann::json> ReadJson(const std::string& path) {
  SAE_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::InternalError(absl::StrCat("the peer wrote malformed JSON to ", path));
  }
  return json;
}

}  // namespace

std::string DefaultNodeModulesDir() { return tokenizer::SaeCacheDir() + "/npm/node_modules"; }

uint32_t TokenChecksum(absl::Span<const int32_t> ids) {
  uint32_t h = 0;
  for (int32_t id : ids) h = h * 31 + static_cast<uint32_t>(id);
  return h;
}

absl::StatusOr<JsTiktokenPeer> JsTiktokenPeer::Find(std::string node_modules_dir) {
  if (!IsExecutableOnPath("node")) {
    return absl::FailedPreconditionError(
        "node is not on PATH: install Node.js (scripts/install-deps.sh does)");
  }
  struct stat st;
  std::string package = node_modules_dir + "/js-tiktoken/package.json";
  if (::stat(package.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "js-tiktoken is not installed in ", node_modules_dir, ": run scripts/fetch-assets.sh"));
  }
  if (::stat(kPeerScript, &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the peer script ", kPeerScript, " is missing from the source tree"));
  }
  return JsTiktokenPeer(std::move(node_modules_dir));
}

absl::Status JsTiktokenPeer::RunScript(const std::string& mode,
                                       const std::vector<std::string>& args) const {
  SAE_ASSIGN_OR_RETURN(TemporaryFolder folder, TemporaryFolder::Create());
  std::string stderr_path = folder.File("stderr.txt");
  std::vector<std::string> argv_strings = {"node", kPeerScript, mode, node_modules_dir_};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  int spawn_error = posix_spawnp(&pid, "node", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run node: ", std::strerror(spawn_error)));
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return ErrnoStatus("cannot wait for", "node", errno);
  }
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return absl::OkStatus();
  std::string message = ReadFile(stderr_path).value_or("");
  message = std::string(absl::StripAsciiWhitespace(message));
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 3) {
    return absl::FailedPreconditionError(message);
  }
  return absl::InternalError(absl::StrCat(
      "node ", kPeerScript, " ", mode, " failed (",
      WIFEXITED(wait_status) ? "exit status " : "signal ",
      WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : WTERMSIG(wait_status), "): ", message));
}

absl::StatusOr<std::vector<std::vector<int32_t>>> JsTiktokenPeer::Encode(
    const std::vector<std::string>& texts) const {
  SAE_ASSIGN_OR_RETURN(TemporaryFolder folder, TemporaryFolder::Create());
  std::string input;
  try {
    input = nlohmann::json(texts).dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the peer takes valid UTF-8 text only: ", e.what()));
  }
  SAE_RETURN_IF_ERROR(WriteFileAtomically(folder.File("in.json"), input));
  SAE_RETURN_IF_ERROR(RunScript("encode", {folder.File("in.json"), folder.File("out.json")}));
  SAE_ASSIGN_OR_RETURN(nlohmann::json output, ReadJson(folder.File("out.json")));
  if (!output.is_array() || output.size() != texts.size()) {
    return absl::InternalError("the peer answered a different number of texts than it was given");
  }
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(texts.size());
  for (const nlohmann::json& one : output) ids.push_back(one.get<std::vector<int32_t>>());
  return ids;
}

absl::StatusOr<JsTiktokenPeer::Throughput> JsTiktokenPeer::MeasureThroughput(
    const std::string& text_path, double min_seconds) const {
  SAE_ASSIGN_OR_RETURN(TemporaryFolder folder, TemporaryFolder::Create());
  SAE_RETURN_IF_ERROR(
      RunScript("throughput", {text_path, absl::StrCat(min_seconds), folder.File("out.json")}));
  SAE_ASSIGN_OR_RETURN(nlohmann::json output, ReadJson(folder.File("out.json")));
  Throughput throughput;
  throughput.bytes = output.value("bytes", int64_t{0});
  throughput.runs = output.value("runs", int64_t{0});
  throughput.seconds = output.value("seconds", 0.0);
  throughput.tokens = output.value("tokens", int64_t{0});
  throughput.checksum = output.value("checksum", uint32_t{0});
  if (throughput.runs <= 0 || throughput.seconds <= 0) {
    return absl::InternalError("the peer reported no timed runs");
  }
  return throughput;
}

}  // namespace sae::support
