// Packing + sharding throughput (tokens/s) on a pre-tokenised .bin and on real English text (the
// Debian `fortunes` corpus through the real GPT-2 tokenizer), and mixing-buffer throughput
// (activations/s, d_in 768), each beside a reference measured in the same run:
//   .bin   widening the same uint16 ids to int32 (the least any reader must do);
//   text   encoding the same documents with the tokenizer alone;
//   buffer memcpy of the same bytes in and out.
//
//   data_bench [TEXT_FOLDER_OR_FILE]   (default /usr/share/games/fortunes)
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/bench_util.h"
#include "core/data/context_shard.h"
#include "core/data/dataset.h"
#include "core/data/mixing_buffer.h"
#include "core/data/token_file_format.h"
#include "core/tokenizer/gpt2_tokenizer.h"
#include "core/util/files.h"
#include "spdlog/spdlog.h"

namespace {

namespace fs = std::filesystem;
using sae::data::ContextShard;
using sae::data::Dataset;
using sae::data::DatasetOptions;
using sae::tokenizer::Gpt2Tokenizer;

constexpr int64_t kContextSize = 128;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "data_bench: %s\n", message.c_str());
  std::exit(1);
}

// Reads one epoch of every shard, one shard after another; returns the ids served.
int64_t ReadAllShards(std::shared_ptr<const Dataset> dataset, uint32_t shard_count) {
  int64_t ids = 0;
  std::vector<int32_t> context;
  for (uint32_t shard_index = 0; shard_index < shard_count; ++shard_index) {
    auto shard = ContextShard::Open(dataset, shard_index, shard_count);
    if (!shard.ok()) Die(shard.status().ToString());
    while ((*shard)->cursor().epoch == 0) {
      absl::Status status = (*shard)->Next(&context);
      if (!status.ok()) Die(status.ToString());
      ids += static_cast<int64_t>(context.size());
    }
  }
  return ids;
}

std::shared_ptr<const Dataset> OpenDataset(const std::string& path, const Gpt2Tokenizer* tokenizer,
                                           const std::string& separator = "<|endoftext|>") {
  DatasetOptions options;
  options.dataset_path = path;
  options.context_size = kContextSize;
  options.text_document_separator = separator;
  auto dataset = Dataset::Open(options, tokenizer);
  if (!dataset.ok()) Die(dataset.status().ToString());
  return *dataset;
}

void BenchTokenFile(const std::string& folder) {
  // 32M ids in documents of 50 to 1500 ids, as nanoGPT writes them (each followed by EOT).
  const int64_t total = 32 << 20;
  std::mt19937 random(1);
  std::vector<int32_t> ids;
  ids.reserve(total);
  while (static_cast<int64_t>(ids.size()) < total) {
    int64_t length = 50 + random() % 1451;
    for (int64_t i = 0; i < length; ++i) ids.push_back(static_cast<int32_t>(random() % 50256));
    ids.push_back(sae::tokenizer::kEndOfText);
  }
  std::string bytes = *sae::data::EncodeNanoGptBin(ids);
  std::string path = folder + "/tokens.bin";
  if (!sae::WriteFileAtomically(path, bytes).ok()) Die("cannot write " + path);
  std::shared_ptr<const Dataset> dataset = OpenDataset(path, nullptr);

  std::printf("\nPacking + sharding a nanoGPT .bin: %.1f M ids (%.0f MB), context %ld, one epoch\n",
              ids.size() / 1e6, bytes.size() / 1e6, kContextSize);
  std::printf("%-44s %14s\n", "", "M tokens/s");
  std::vector<int32_t> widened(ids.size());
  double reference = sae::bench::MedianSeconds(
      [&] {
        const char* in = bytes.data();
        for (size_t i = 0; i < widened.size(); ++i) {
          uint16_t id;
          std::memcpy(&id, in + 2 * i, 2);
          widened[i] = id;
        }
      },
      3);
  for (uint32_t shards : {1u, 8u}) {
    int64_t served = 0;
    double seconds = sae::bench::MedianSeconds([&] { served = ReadAllShards(dataset, shards); }, 3);
    std::printf("%-44s %14.1f\n",
                absl::StrCat(shards, shards == 1 ? " shard" : " shards, one after another").c_str(),
                served / seconds / 1e6);
  }
  std::printf("%-44s %14.1f\n", "reference: widen the uint16 ids to int32",
              ids.size() / reference / 1e6);
}

// The fortunes corpus as one text file of documents separated by "%" lines.
std::string WriteFortunes(const std::string& source, const std::string& folder) {
  std::vector<fs::path> files;
  if (fs::is_regular_file(source)) {
    files.push_back(source);
  } else {
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(source, error)) {
      if (entry.is_symlink() || !entry.is_regular_file()) continue;
      if (entry.path().extension() == ".dat") continue;
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  std::string corpus;
  for (const fs::path& file : files) {
    std::string text = sae::ReadFile(file.string()).value_or("");
    if (text.empty()) continue;
    if (!corpus.empty()) corpus += "%\n";
    corpus += text;
    if (corpus.back() != '\n') corpus += '\n';
  }
  if (corpus.empty()) {
    Die("no text in " + source + " (install the Debian package fortunes, or name a text file)");
  }
  std::string path = folder + "/fortunes.txt";
  if (!sae::WriteFileAtomically(path, corpus).ok()) Die("cannot write " + path);
  return path;
}

std::unique_ptr<Gpt2Tokenizer> LoadTokenizer() {
  auto tokenizer = Gpt2Tokenizer::Load(sae::tokenizer::DefaultTokenizerDir());
  if (!tokenizer.ok()) {
    Die(tokenizer.status().ToString() + " (run scripts/fetch-assets.sh)");
  }
  return std::move(*tokenizer);
}

void BenchText(const std::string& source, const std::string& folder) {
  std::string path = WriteFortunes(source, folder);
  std::string corpus = *sae::ReadFile(path);
  // The same documents as the dataset reads, for the tokenizer-only reference.
  std::vector<std::string> documents;
  size_t begin = 0;
  while (begin < corpus.size()) {
    size_t separator = corpus.find("\n%\n", begin);
    size_t end = separator == std::string::npos ? corpus.size() : separator;
    if (end > begin) documents.push_back(corpus.substr(begin, end - begin));
    begin = separator == std::string::npos ? corpus.size() : separator + 3;
  }
  std::printf(
      "\nPacking + sharding text: %s, %.2f MB, %zu documents split at %% lines, GPT-2 "
      "tokenizer, context %ld, one epoch, cold tokenizer cache\n",
      source.c_str(), corpus.size() / 1e6, documents.size(), kContextSize);
  std::printf("%-44s %14s %10s\n", "", "M tokens/s", "MB/s");

  std::unique_ptr<Gpt2Tokenizer> reference_tokenizer = LoadTokenizer();
  int64_t encoded = 0;
  auto start = std::chrono::steady_clock::now();
  for (const std::string& document : documents) {
    encoded += static_cast<int64_t>(reference_tokenizer->Encode(document).size());
  }
  double reference = SecondsSince(start);

  for (uint32_t shards : {1u, 4u}) {
    std::unique_ptr<Gpt2Tokenizer> tokenizer = LoadTokenizer();
    std::shared_ptr<const Dataset> dataset = OpenDataset(path, tokenizer.get(), "%");
    start = std::chrono::steady_clock::now();
    int64_t served = ReadAllShards(dataset, shards);
    double seconds = SecondsSince(start);
    std::printf("%-44s %14.2f %10.2f\n",
                absl::StrCat(shards, shards == 1 ? " shard" : " shards, one after another").c_str(),
                served / seconds / 1e6, corpus.size() / seconds / 1e6);
  }
  std::printf("%-44s %14.2f %10.2f\n", "reference: Encode the documents alone",
              encoded / reference / 1e6, corpus.size() / reference / 1e6);
}

void BenchMixingBuffer() {
  const int64_t d_in = 768;
  const int64_t capacity = 65536;  // 192 MiB of float32
  const int64_t block = 32 * 128;  // store_batch_size contexts of 128 tokens
  const int64_t batch = 4096;      // train_batch_size
  const int64_t total = 128 * block;
  sae::data::MixingBufferOptions options;
  options.capacity = capacity;
  options.d_in = d_in;
  at::Tensor activations = at::randn({block, d_in});
  const double bytes_per_activation = d_in * 4.0;

  std::printf(
      "\nMixing buffer: d_in %ld float32, capacity %ld (%.0f MiB), blocks of %ld in, "
      "batches of %ld out, %ld activations\n",
      d_in, capacity, capacity * bytes_per_activation / (1 << 20), block, batch, total);
  std::printf("%-44s %14s %10s\n", "", "M activ./s", "GB/s in");

  for (bool threaded : {false, true}) {
    for (bool shuffle : {true, false}) {
      options.shuffle = shuffle;
      auto created = sae::data::MixingBuffer::Create(options);
      if (!created.ok()) Die(created.status().ToString());
      sae::data::MixingBuffer& buffer = **created;
      auto start = std::chrono::steady_clock::now();
      int64_t served = 0;
      if (threaded) {
        std::thread producer([&] {
          for (int64_t added = 0; added < total; added += block) {
            if (!buffer.Add(activations).ok()) Die("Add failed");
          }
          buffer.FinishAdding();
        });
        while (true) {
          auto taken = buffer.Take(batch);
          if (!taken.ok()) break;
          served += taken->size(0);
        }
        producer.join();
      } else {
        for (int64_t added = 0; added < total;) {
          auto stored = buffer.AddFor(activations, absl::ZeroDuration());
          if (!stored.ok()) Die(stored.status().ToString());
          added += *stored;
          if (*stored < block) {
            // Full: take batches until the rest of the block fits.
            at::Tensor rest = activations.narrow(0, *stored, block - *stored);
            while (buffer.fill().capacity - buffer.fill().stored < rest.size(0)) {
              served += buffer.Take(batch)->size(0);
            }
            if (!buffer.Add(rest).ok()) Die("Add failed");
            added += rest.size(0);
          }
        }
        buffer.FinishAdding();
        while (true) {
          auto taken = buffer.Take(batch);
          if (!taken.ok()) break;
          served += taken->size(0);
        }
      }
      double seconds = SecondsSince(start);
      if (served != total) Die("the buffer served " + std::to_string(served));
      std::printf("%-44s %14.2f %10.2f\n",
                  absl::StrCat(threaded ? "producer + consumer threads" : "one thread",
                               shuffle ? ", shuffled" : ", FIFO")
                      .c_str(),
                  total / seconds / 1e6, total * bytes_per_activation / seconds / 1e9);
    }
  }

  // The same bytes copied in (block by block into a capacity-sized area) and out (batch by
  // batch), with no bookkeeping.
  std::vector<char> storage(static_cast<size_t>(capacity * bytes_per_activation));
  std::vector<char> out(static_cast<size_t>(batch * bytes_per_activation));
  const char* in = static_cast<const char*>(activations.data_ptr());
  const size_t block_bytes = static_cast<size_t>(block * bytes_per_activation);
  const size_t batch_bytes = out.size();
  auto start = std::chrono::steady_clock::now();
  size_t write_at = 0, read_at = 0;
  for (int64_t added = 0; added < total; added += block) {
    std::memcpy(storage.data() + write_at, in, block_bytes);
    write_at = (write_at + block_bytes) % storage.size();
    for (size_t i = 0; i < block_bytes / batch_bytes; ++i) {
      std::memcpy(out.data(), storage.data() + read_at, batch_bytes);
      read_at = (read_at + batch_bytes) % storage.size();
    }
  }
  double seconds = SecondsSince(start);
  std::printf("%-44s %14.2f %10.2f\n", "reference: memcpy in and out, one thread",
              total / seconds / 1e6, total * bytes_per_activation / seconds / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);  // no epoch warnings or buffer sizes in the table
  const std::string source = argc > 1 ? argv[1] : "/usr/share/games/fortunes";
  std::string folder = (fs::temp_directory_path() / "sae_data_bench_XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) Die("cannot create a temporary folder");
  BenchTokenFile(folder);
  BenchText(source, folder);
  BenchMixingBuffer();
  std::error_code ignored;
  fs::remove_all(folder, ignored);
  return 0;
}
