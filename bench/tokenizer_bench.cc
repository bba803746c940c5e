// GPT-2 tokenizer throughput on real English text (the Debian `fortunes` corpus), beside the
// peers a user would pick, on the same bytes in the same run, one thread each:
//   - tiktoken (OpenAI's Rust tokenizer, PyPI, in the peer virtual environment): the headline.
//     Measured on the held-out half of the corpus's documents (every other fortune) with a
//     freshly loaded tokenizer of ours, whose piece cache has seen none of it: our cold figure
//     against tiktoken's (which keeps no cache between calls).
//   - js-tiktoken's r50k_base (Node.js): an exactness check on the whole corpus, and the old
//     warm comparison.
//
//   tokenizer_bench [TEXT_FOLDER_OR_FILE]   (default /usr/share/games/fortunes)
//
// Prints MB/s (10^6 bytes of UTF-8 input per second) single-threaded, cold (first pass, empty
// piece cache) and warm (median of later passes), multi-threaded over the corpus's documents,
// the peers' figures with the ratios, and whether all produced the same ids.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "bench/bench_util.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/util/files.h"
#include "support/peer_tokenizer.h"

namespace {

using sae::tokenizer::Gpt2Tokenizer;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The corpus: `path` itself when it is a file; otherwise its regular files, by name, without the
// fortune index files (*.dat) and without symbolic links (the *.u8 aliases).
std::string ReadCorpus(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_regular_file(path)) return sae::ReadFile(path).value_or("");
  std::vector<fs::path> files;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, error)) {
    if (entry.is_symlink() || !entry.is_regular_file()) continue;
    if (entry.path().extension() == ".dat") continue;
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  std::string corpus;
  for (const fs::path& file : files) corpus += sae::ReadFile(file.string()).value_or("");
  return corpus;
}

// Encodes `documents` on `threads` threads, each taking the next document until none is left;
// returns the seconds taken.
double EncodeInParallel(const Gpt2Tokenizer& tokenizer, const std::vector<std::string>& documents,
                        int threads) {
  std::atomic<size_t> next{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < documents.size(); i = next++) {
        std::vector<int32_t> ids = tokenizer.Encode(documents[i]);
        if (ids.empty() && !documents[i].empty()) std::abort();
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  return SecondsSince(start);
}

// The peer virtual environment's interpreter: $SAE_PEER_PYTHON, else scripts/peer-venv.sh's
// default location.
std::string PeerPython() {
  const char* env = std::getenv("SAE_PEER_PYTHON");
  if (env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "") + "/.cache/sae-service/peer-venv/bin/python";
}

// The held-out half: every other document, joined as in the corpus.
std::string OddDocuments(const std::vector<std::string>& documents) {
  std::vector<std::string> odd;
  for (size_t i = 1; i < documents.size(); i += 2) odd.push_back(documents[i]);
  return absl::StrJoin(odd, "\n%\n");
}

// Our fresh tokenizer against tiktoken on `text`; prints the headline rows. False when the peer
// could not be run or the ids differ.
bool CompareWithTiktoken(const std::string& dir, const std::string& text) {
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> fresh = Gpt2Tokenizer::Load(dir);
  if (!fresh.ok()) return false;
  auto start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = (*fresh)->Encode(text);
  const double cold_seconds = SecondsSince(start);
  const double megabytes = static_cast<double>(text.size()) / 1e6;

  const std::string file = (std::filesystem::temp_directory_path() /
                            ("sae-tokenizer-heldout-" + std::to_string(::getpid()) + ".txt"))
                               .string();
  if (!sae::WriteFileAtomically(file, text).ok()) return false;
  const std::string line = sae::bench::RunAndCaptureLastLine(
      PeerPython() + " " + sae::bench::SourceDir() + "/bench/reference/tiktoken_throughput.py " +
      dir + " " + file + " 5");
  std::filesystem::remove(file);
  auto peer = nlohmann::json::parse(line, nullptr, false);
  std::printf("\nheld-out half (%zu bytes, every other document), 1 thread each:\n", text.size());
  std::printf("%-44s %10.2f %12.0f\n", "ours, fresh tokenizer, cold (first pass)",
              megabytes / cold_seconds, static_cast<double>(ids.size()) / cold_seconds);
  if (peer.is_discarded() || !peer.contains("warm_seconds")) {
    std::printf("tiktoken: not measured (run scripts/peer-venv.sh; output: %s)\n", line.c_str());
    return false;
  }
  const double peer_cold = peer["cold_seconds"].get<double>();
  const double peer_warm = peer["warm_seconds"].get<double>();
  const std::string version = peer["version"].get<std::string>();
  std::printf("%-44s %10.2f %12.0f\n", ("tiktoken " + version + ", first call").c_str(),
              megabytes / peer_cold, static_cast<double>(ids.size()) / peer_cold);
  std::printf("%-44s %10.2f %12.0f\n", ("tiktoken " + version + ", median of 5").c_str(),
              megabytes / peer_warm, static_cast<double>(ids.size()) / peer_warm);
  std::printf("ratio, ours (cold, unseen text) / tiktoken (median): %.2fx  <- headline\n",
              peer_warm / cold_seconds);
  const bool same = peer["tokens"].get<int64_t>() == static_cast<int64_t>(ids.size()) &&
                    peer["checksum"].get<uint32_t>() == sae::support::TokenChecksum(ids);
  std::printf("same ids as tiktoken: %s (%zu tokens)\n", same ? "yes" : "NO", ids.size());
  return same;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string source = argc > 1 ? argv[1] : "/usr/share/games/fortunes";
  const std::string corpus = ReadCorpus(source);
  if (corpus.empty()) {
    std::fprintf(stderr,
                 "tokenizer_bench: no text in %s (install the Debian package fortunes: "
                 "scripts/install-deps.sh)\n",
                 source.c_str());
    return 2;
  }
  const double megabytes = static_cast<double>(corpus.size()) / 1e6;
  std::printf("GPT-2 tokenizer benchmark: %s, %.2f MB, %s UTF-8\n", source.c_str(), megabytes,
              sae::tokenizer::IsValidUtf8(corpus) ? "valid" : "NOT valid");

  const std::string dir = sae::tokenizer::DefaultTokenizerDir();
  auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<Gpt2Tokenizer>> loaded = Gpt2Tokenizer::Load(dir);
  if (!loaded.ok()) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", loaded.status().ToString().c_str());
    return 2;
  }
  const double load_seconds = SecondsSince(load_start);
  const Gpt2Tokenizer& tokenizer = **loaded;

  // Single thread: the first pass fills the piece cache; later passes find it full.
  auto cold_start = std::chrono::steady_clock::now();
  std::vector<int32_t> ids = tokenizer.Encode(corpus);
  const double cold_seconds = SecondsSince(cold_start);
  const double warm_seconds = sae::bench::MedianSeconds([&] { ids = tokenizer.Encode(corpus); }, 5);

  // Many threads, over the corpus's documents (fortunes are separated by lines of "%").
  std::vector<std::string> documents = absl::StrSplit(corpus, "\n%\n");
  const int threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  const double parallel_seconds =
      sae::bench::MedianSeconds([&] { EncodeInParallel(tokenizer, documents, threads); }, 5);

  // The peer, on the same bytes.
  std::string corpus_file = (std::filesystem::temp_directory_path() /
                             ("sae-tokenizer-bench-" + std::to_string(::getpid()) + ".txt"))
                                .string();
  if (!sae::WriteFileAtomically(corpus_file, corpus).ok()) {
    std::fprintf(stderr, "tokenizer_bench: cannot write %s\n", corpus_file.c_str());
    return 1;
  }
  absl::StatusOr<sae::support::JsTiktokenPeer> peer = sae::support::JsTiktokenPeer::Find();
  absl::StatusOr<sae::support::JsTiktokenPeer::Throughput> peer_throughput =
      peer.ok() ? peer->MeasureThroughput(corpus_file, 5.0) : peer.status();
  std::filesystem::remove(corpus_file);

  const double ours = megabytes / warm_seconds;
  std::printf("load: %.0f ms (%d tokens)\n", load_seconds * 1e3, tokenizer.vocab_size());
  std::printf("\n%-44s %10s %12s\n", "", "MB/s", "tokens/s");
  std::printf("%-44s %10.2f %12.0f\n", "ours, 1 thread, cold (first pass)",
              megabytes / cold_seconds, static_cast<double>(ids.size()) / cold_seconds);
  std::printf("%-44s %10.2f %12.0f\n", "ours, 1 thread, warm (median of 5)", ours,
              static_cast<double>(ids.size()) / warm_seconds);
  char label[64];
  std::snprintf(label, sizeof(label), "ours, %d threads, %zu documents", threads, documents.size());
  std::printf("%-44s %10.2f %12.0f\n", label, megabytes / parallel_seconds,
              static_cast<double>(ids.size()) / parallel_seconds);
  if (!peer_throughput.ok()) {
    std::printf("js-tiktoken r50k_base: not measured: %s\n",
                peer_throughput.status().ToString().c_str());
    return 1;
  }
  const double theirs = peer_throughput->megabytes_per_second();
  std::printf("%-44s %10.2f %12.0f\n", "js-tiktoken r50k_base (node), 1 thread", theirs,
              static_cast<double>(peer_throughput->tokens * peer_throughput->runs) /
                  peer_throughput->seconds);
  std::printf("\nratio, ours (1 thread, warm) / js-tiktoken: %.2fx (goal: at least 2x)\n",
              ours / theirs);
  std::printf("ratio, ours (1 thread, cold) / js-tiktoken: %.2fx\n",
              megabytes / cold_seconds / theirs);
  const bool same_ids = peer_throughput->tokens == static_cast<int64_t>(ids.size()) &&
                        peer_throughput->checksum == sae::support::TokenChecksum(ids);
  std::printf("same ids as js-tiktoken: %s (%zu tokens)\n", same_ids ? "yes" : "NO", ids.size());
  const bool tiktoken_ok = CompareWithTiktoken(dir, OddDocuments(documents));
  return same_ids && tiktoken_ok ? 0 : 1;
}
