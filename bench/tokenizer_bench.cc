// GPT-2 tokenizer throughput on real English text (the Debian `fortunes` corpus), beside
// js-tiktoken's r50k_base (GPT-2's encoding, run by Node.js) on the same bytes in the same run.
//
//   tokenizer_bench [TEXT_FOLDER_OR_FILE]   (default /usr/share/games/fortunes)
//
// Prints MB/s (10^6 bytes of UTF-8 input per second) single-threaded, cold (first pass, empty
// piece cache) and warm (median of later passes), multi-threaded over the corpus's documents,
// and the peer's figure with the ratio; and whether both produced the same ids.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
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
  return same_ids ? 0 : 1;
}
