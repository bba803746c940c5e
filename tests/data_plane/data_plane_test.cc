// The data plane end to end, with the real binaries on 127.0.0.1: sae-activation-server and
// sae-trainer processes training a gpt2-tiny SAE (saectl model init), c10d Gloo between the
// trainers, gRPC between servers and trainers, Prometheus scraping them.
//
// Runs use shuffle: false, so every server's stream is its shard's activations in the order an
// ActivationStore generates them. The trainers log each batch they trained on (--batch-log:
// server, incarnation, stream offset, sums of its values), which lets the test check, per
// server incarnation, that no activation was served twice and that every batch holds exactly
// the store's activations at its offset.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/saelens.h"
#include "core/training/checkpoint.h"
#include "core/training/run_assets.h"
#include "core/wire/cursor_text.h"
#include "nlohmann/json.hpp"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/ports.h"
#include "support/temp_dir.h"
#include "support/tiny_run.h"

namespace sae {
namespace {

using support::BinDir;
using support::ChildProcess;
using support::Eventually;
using support::FindExecutable;
using support::FreeLoopbackPort;
using support::ReadWholeFile;
using support::TempDir;

// The numbers of a run: 256 tokens per global step, 60 steps.
constexpr int64_t kBatch = 256;
constexpr int64_t kSteps = 60;
constexpr int64_t kDIn = 64;  // gpt2-tiny's d_model

struct BatchRecord {
  int rank = 0;
  int64_t step = 0;
  int server = 0;
  std::string incarnation;
  uint64_t offset = 0;
  int64_t rows = 0;
  double sum = 0;
  double sum_sq = 0;
  double mse_loss = 0;
};

std::vector<BatchRecord> ReadBatchLog(const std::string& path) {
  std::vector<BatchRecord> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    BatchRecord r;
    r.rank = j["rank"];
    r.step = j["step"];
    r.server = j["server"];
    r.incarnation = j["incarnation"];
    r.offset = j["offset"];
    r.rows = j["rows"];
    r.sum = j["sum"];
    r.sum_sq = j["sum_sq"];
    r.mse_loss = j["mse_loss"];
    records.push_back(r);
  }
  return records;
}

// The value of every sample of `name` in a Prometheus text exposition, summed.
double SumOfSeries(const std::string& exposition, const std::string& name) {
  double total = 0;
  std::regex sample("^" + name + R"((\{[^}]*\})? ([^ ]+)$)");
  std::istringstream lines(exposition);
  std::string line;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, match, sample)) total += std::stod(match[2].str());
  }
  return total;
}

std::string Scrape(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(5);
  httplib::Result response = client.Get("/metrics");
  return response && response->status == 200 ? response->body : "";
}

// `promtool check metrics` on an exposition: "" when it passes, its complaint otherwise.
std::string Promtool(const std::string& exposition, const std::string& dir) {
  const std::string promtool = FindExecutable("promtool");
  if (promtool.empty()) return "promtool not found: run scripts/install-deps.sh (prometheus)";
  const std::string path = dir + "/exposition.txt";
  std::ofstream(path) << exposition;
  FILE* pipe = ::popen((promtool + " check metrics < " + path + " 2>&1").c_str(), "r");
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && output.empty()) return "";
  return output.empty() ? "promtool failed" : output;
}

struct Server {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
  int metrics_port = 0;
  std::string cursor_file;
};

class DataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    dir = dir_.path();
    ChildProcess init({BinDir() + "/saectl", "model", "init", "--preset", "gpt2-tiny", "--seed",
                       "0", "--out", dir + "/model"},
                      dir + "/saectl.log");
    ASSERT_TRUE(init.WaitForExit(std::chrono::seconds(60)));
    ASSERT_EQ(init.exit_code(), 0) << ReadWholeFile(dir + "/saectl.log");
    ASSERT_TRUE(support::WriteRandomTokens(dir + "/tokens.bin", 4000, 3).ok());
  }

  // run.yaml for `servers` activation servers and `trainers` trainers, plus `extra` keys.
  std::string WriteConfig(int servers, int trainers, int64_t steps = kSteps,
                          const std::string& extra = "") {
    const std::string path = dir + "/run.yaml";
    std::ofstream(path) << "model_path: " << dir << "/model\n"
                        << "dataset_path: " << dir << "/tokens.bin\n"
                        << "hook_point: blocks.1.hook_resid_pre\n"
                        << "context_size: 32\n"
                        << "expansion_factor: 4\n"
                        << "train_batch_size: " << kBatch << "\n"
                        << "total_training_tokens: " << kBatch * steps << "\n"
                        << "n_batches_in_buffer: 8\n"
                        << "store_batch_size: 16\n"
                        << "lr: 0.001\n"
                        << "lr_warm_up_steps: 5\n"
                        << "b_dec_init_method: mean\n"
                        << "shuffle: false\n"
                        << "activation_servers: " << servers << "\n"
                        << "trainers: " << trainers << "\n"
                        << extra;
    return path;
  }

  Server StartServer(int shard, int shards, int port = 0) {
    Server server;
    server.cursor_file = absl::StrCat(dir, "/shard", shard, ".cursor");
    const std::string ready = absl::StrCat(dir, "/server", shard, ".ready");
    std::filesystem::remove(ready);
    server.process = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            BinDir() + "/sae-activation-server", "--config", dir + "/run.yaml", "--shard-index",
            std::to_string(shard), "--shard-count", std::to_string(shards), "--listen",
            absl::StrCat("127.0.0.1:", port), "--metrics-address", "127.0.0.1", "--metrics-port",
            "0", "--threads", "1", "--cursor-file", server.cursor_file, "--ready-file", ready},
        absl::StrCat(dir, "/server", shard, ".log"));
    EXPECT_TRUE(
        Eventually([&] { return std::filesystem::exists(ready); }, std::chrono::seconds(60)))
        << server.process->Log();
    nlohmann::json info = nlohmann::json::parse(ReadWholeFile(ready), nullptr, false);
    if (info.is_object()) {
      server.port = info["port"];
      server.metrics_port = info["metrics_port"];
    }
    return server;
  }

  std::unique_ptr<ChildProcess> StartTrainer(int rank, int world,
                                             const std::vector<Server>& servers,
                                             int rendezvous_port,
                                             const std::vector<std::string>& extra = {}) {
    std::vector<std::string> addresses;
    for (const Server& s : servers) addresses.push_back(absl::StrCat("127.0.0.1:", s.port));
    std::vector<std::string> argv = {BinDir() + "/sae-trainer",
                                     "--config",
                                     dir + "/run.yaml",
                                     "--rank",
                                     std::to_string(rank),
                                     "--world-size",
                                     std::to_string(world),
                                     "--rendezvous",
                                     absl::StrCat("127.0.0.1:", rendezvous_port),
                                     "--servers",
                                     absl::StrJoin(addresses, ","),
                                     "--output",
                                     dir + "/out",
                                     "--metrics-address",
                                     "127.0.0.1",
                                     "--metrics-port",
                                     "0",
                                     "--threads",
                                     "1",
                                     "--server-deadline",
                                     "60",
                                     "--rendezvous-timeout",
                                     "60",
                                     "--collective-timeout",
                                     "60",
                                     "--batch-log",
                                     absl::StrCat(dir, "/batches.", rank, ".jsonl"),
                                     "--ready-file",
                                     absl::StrCat(dir, "/trainer", rank, ".ready")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<ChildProcess>(argv, absl::StrCat(dir, "/trainer", rank, ".log"));
  }

  // Waits for every trainer to exit with `code`.
  void ExpectTrainersExit(std::vector<std::unique_ptr<ChildProcess>>& trainers, int code = 0) {
    for (size_t r = 0; r < trainers.size(); ++r) {
      ASSERT_TRUE(trainers[r]->WaitForExit(std::chrono::seconds(180)))
          << "trainer " << r << " still runs:\n"
          << trainers[r]->Log();
      EXPECT_EQ(trainers[r]->exit_code(), code) << "trainer " << r << ":\n" << trainers[r]->Log();
    }
  }

  // The activations shard `shard` of `shards` generates from `start` (its beginning when
  // null): rows [0, rows) of its FIFO stream.
  at::Tensor StoreRows(int shard, int shards, int64_t rows, const data::ShardCursor* start) {
    auto config = config::LoadRunConfig(dir + "/run.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    auto assets = training::LoadRunAssets(*config);
    EXPECT_TRUE(assets.ok()) << assets.status();
    data::ActivationResumePoint point;
    if (start != nullptr) point.cursor = *start;
    auto store = data::ActivationStore::Create(
        assets->model.get(), assets->dataset, shard, shards,
        training::ActivationStoreOptionsFor(*config, assets->hook), start ? &point : nullptr);
    EXPECT_TRUE(store.ok()) << store.status();
    std::vector<at::Tensor> parts;
    for (int64_t have = 0; have < rows; have += 512) parts.push_back(*(*store)->NextBatch(512));
    return at::cat(parts).narrow(0, 0, rows);
  }

  // The checks every run must pass: the token budget is met at the same step on every rank,
  // loss falls, the final SAE loads, and per server incarnation the batches are disjoint and
  // hold exactly the store's activations. `starts` gives an incarnation's starting cursor
  // (default: the shard's beginning).
  std::vector<BatchRecord> VerifyRun(int servers, int trainers, int64_t steps = kSteps,
                                     const std::map<std::string, data::ShardCursor>& starts = {}) {
    nlohmann::json summary =
        nlohmann::json::parse(ReadWholeFile(dir + "/out/summary.json"), nullptr, false);
    EXPECT_TRUE(summary.is_object()) << "no summary.json";
    if (!summary.is_object()) return {};
    EXPECT_EQ(summary["steps"], steps);
    EXPECT_EQ(summary["tokens"], steps * kBatch);
    EXPECT_LT(summary["last"]["mse_loss"].get<double>(),
              0.8 * summary["first"]["mse_loss"].get<double>())
        << "the loss did not fall";
    auto sae = io::ReadSaeLens(dir + "/out/final");
    EXPECT_TRUE(sae.ok()) << sae.status();
    if (sae.ok()) {
      EXPECT_EQ(sae->W_enc.size(0), kDIn);
      EXPECT_EQ(sae->W_enc.size(1), 4 * kDIn);
      EXPECT_EQ(sae->metadata.hook_name, "blocks.1.hook_resid_pre");
    }

    std::vector<BatchRecord> all;
    for (int r = 0; r < trainers; ++r) {
      std::vector<BatchRecord> mine = ReadBatchLog(absl::StrCat(dir, "/batches.", r, ".jsonl"));
      EXPECT_EQ(static_cast<int64_t>(mine.size()), steps) << "rank " << r;
      for (size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(mine[i].step, static_cast<int64_t>(i + 1));
      all.insert(all.end(), mine.begin(), mine.end());
    }
    int64_t trained = 0;
    for (const BatchRecord& b : all) trained += b.rows;
    EXPECT_EQ(trained, steps * kBatch) << "tokens trained";

    // Per (server, incarnation): disjoint offsets, and each batch equals the store's rows.
    std::map<std::pair<int, std::string>, std::vector<const BatchRecord*>> streams;
    for (const BatchRecord& b : all) streams[{b.server, b.incarnation}].push_back(&b);
    for (auto& [key, batches] : streams) {
      std::sort(batches.begin(), batches.end(),
                [](const BatchRecord* a, const BatchRecord* b) { return a->offset < b->offset; });
      for (size_t i = 1; i < batches.size(); ++i) {
        EXPECT_GE(batches[i]->offset, batches[i - 1]->offset + batches[i - 1]->rows)
            << "server " << key.first << " served offset " << batches[i]->offset << " twice";
      }
      const BatchRecord* last = batches.back();
      auto start = starts.find(key.second);
      at::Tensor rows = StoreRows(key.first, servers, last->offset + last->rows,
                                  start == starts.end() ? nullptr : &start->second);
      for (const BatchRecord* b : batches) {
        at::Tensor expected = rows.narrow(0, b->offset, b->rows).to(at::kDouble);
        const double sum = expected.sum().item<double>();
        const double sum_sq = expected.pow(2).sum().item<double>();
        EXPECT_NEAR(b->sum, sum, 1e-9 * std::max(1.0, std::abs(sum)))
            << "server " << key.first << " offset " << b->offset << ": not the store's rows";
        EXPECT_NEAR(b->sum_sq, sum_sq, 1e-9 * std::max(1.0, sum_sq));
      }
    }
    return all;
  }

  // Sum over servers of activations served, from their /metrics.
  double ServedActivations(const std::vector<Server>& servers) {
    double served = 0;
    for (const Server& s : servers) {
      served += SumOfSeries(Scrape(s.metrics_port), "sae_stream_served_activations_total");
    }
    return served;
  }

  TempDir dir_;
  std::string dir;
};

TEST_F(DataPlaneTest, TwoServersFeedTwoTrainersExactlyTheTokenBudget) {
  WriteConfig(2, 2);
  std::vector<Server> servers;
  for (int s = 0; s < 2; ++s) servers.push_back(StartServer(s, 2));
  const int rendezvous = FreeLoopbackPort();
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  for (int r = 0; r < 2; ++r) trainers.push_back(StartTrainer(r, 2, servers, rendezvous));
  ExpectTrainersExit(trainers);
  std::vector<BatchRecord> batches = VerifyRun(2, 2);
  EXPECT_EQ(ServedActivations(servers), kSteps * kBatch) << "tokens served != tokens trained";
  // Both servers fed both ranks.
  std::set<std::pair<int, int>> pairs;
  for (const BatchRecord& b : batches) pairs.insert({b.server, b.rank});
  EXPECT_EQ(pairs.size(), 4u);
}

TEST_F(DataPlaneTest, OneServerFeedsTwoTrainers) {
  WriteConfig(1, 2);
  std::vector<Server> servers;
  servers.push_back(StartServer(0, 1));
  const int rendezvous = FreeLoopbackPort();
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  for (int r = 0; r < 2; ++r) trainers.push_back(StartTrainer(r, 2, servers, rendezvous));
  ExpectTrainersExit(trainers);
  VerifyRun(1, 2);
  EXPECT_EQ(ServedActivations(servers), kSteps * kBatch);
}

TEST_F(DataPlaneTest, TwoServersFeedOneTrainer) {
  WriteConfig(2, 1);
  std::vector<Server> servers;
  for (int s = 0; s < 2; ++s) servers.push_back(StartServer(s, 2));
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  trainers.push_back(StartTrainer(0, 1, servers, FreeLoopbackPort()));
  ExpectTrainersExit(trainers);
  VerifyRun(2, 1);
  EXPECT_EQ(ServedActivations(servers), kSteps * kBatch);
}

TEST_F(DataPlaneTest, TheRunCompletesWhenItsActivationServerIsKilledAndRestarted) {
  // One server feeding two trainers, so the run cannot finish without the restarted server.
  const int64_t steps = 400;
  WriteConfig(1, 2, steps);
  const int port = FreeLoopbackPort();
  std::vector<Server> servers;
  servers.push_back(StartServer(0, 1, port));
  const int rendezvous = FreeLoopbackPort();
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  for (int r = 0; r < 2; ++r) trainers.push_back(StartTrainer(r, 2, servers, rendezvous));
  ASSERT_TRUE(Eventually([&] { return ReadBatchLog(dir + "/batches.0.jsonl").size() >= 40; },
                         std::chrono::seconds(120)))
      << trainers[0]->Log();
  servers[0].process->KillHard();  // kill -9: no goodbye, the stream just breaks
  ASSERT_EQ(servers[0].process->signal(), SIGKILL);
  // It comes back on the same port and resumes from the frontier it kept in its cursor file.
  auto frontier = wire::CursorFromHex(ReadWholeFile(servers[0].cursor_file));
  ASSERT_TRUE(frontier.ok()) << frontier.status();
  servers[0] = StartServer(0, 1, port);
  ExpectTrainersExit(trainers);

  std::vector<BatchRecord> batches = ReadBatchLog(dir + "/batches.0.jsonl");
  std::set<std::string> incarnations;
  for (const BatchRecord& b : batches) incarnations.insert(b.incarnation);
  ASSERT_EQ(incarnations.size(), 2u) << "the restarted server served nothing";
  // The second incarnation's stream starts at the cursor file's frontier.
  const std::string second = batches.back().incarnation;
  VerifyRun(1, 2, steps, {{second, *frontier}});
  EXPECT_NE(trainers[0]->Log().find("restarted"), std::string::npos);
}

TEST_F(DataPlaneTest, EveryBinarysMetricsPassPromtoolAndPrometheusAnswersATrainingQuery) {
  const std::string prometheus = FindExecutable("prometheus");
  ASSERT_FALSE(prometheus.empty()) << "prometheus not found: run scripts/install-deps.sh";
  // A run long enough to be scraped; SIGTERM ends it with a checkpoint.
  WriteConfig(1, 2, 1'000'000);
  std::vector<Server> servers;
  servers.push_back(StartServer(0, 1));
  const int rendezvous = FreeLoopbackPort();
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  for (int r = 0; r < 2; ++r) trainers.push_back(StartTrainer(r, 2, servers, rendezvous));
  std::vector<int> trainer_ports;
  for (int r = 0; r < 2; ++r) {
    const std::string ready = absl::StrCat(dir, "/trainer", r, ".ready");
    ASSERT_TRUE(
        Eventually([&] { return std::filesystem::exists(ready); }, std::chrono::seconds(60)));
    trainer_ports.push_back(nlohmann::json::parse(ReadWholeFile(ready))["metrics_port"]);
  }
  ASSERT_TRUE(Eventually([&] { return ReadBatchLog(dir + "/batches.0.jsonl").size() >= 5; },
                         std::chrono::seconds(120)))
      << trainers[0]->Log();

  std::vector<int> targets = {servers[0].metrics_port, trainer_ports[0], trainer_ports[1]};
  for (int port : targets) {
    const std::string exposition = Scrape(port);
    ASSERT_FALSE(exposition.empty()) << "port " << port;
    EXPECT_EQ(Promtool(exposition, dir), "") << "port " << port << ":\n" << exposition;
  }
  const std::string server_metrics = Scrape(servers[0].metrics_port);
  for (const char* name :
       {"sae_activation_generated_tokens_total", "sae_activation_forward_duration_seconds_count",
        "sae_stream_served_activations_total", "sae_activation_buffer_fill_ratio"}) {
    EXPECT_GT(SumOfSeries(server_metrics, name), 0) << name;
  }
  const std::string trainer_metrics = Scrape(trainer_ports[0]);
  for (const char* name :
       {"sae_train_tokens_total", "sae_stream_received_activations_total",
        "sae_train_allreduce_duration_seconds_count", "sae_train_wait_for_data_seconds_count"}) {
    EXPECT_GT(SumOfSeries(trainer_metrics, name), 0) << name;
  }

  // A real Prometheus scrapes all three and answers a query for a training series.
  const int prometheus_port = FreeLoopbackPort();
  std::ofstream(dir + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      << "scrape_configs:\n  - job_name: sae\n    static_configs:\n      - targets: ['127.0.0.1:"
      << targets[0] << "', '127.0.0.1:" << targets[1] << "', '127.0.0.1:" << targets[2] << "']\n";
  ChildProcess prom({prometheus, "--config.file=" + dir + "/prometheus.yml",
                     "--storage.tsdb.path=" + dir + "/prometheus-data",
                     "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)},
                    dir + "/prometheus.log");
  auto query = [&](const std::string& promql) -> std::optional<double> {
    httplib::Client client("127.0.0.1", prometheus_port);
    client.set_read_timeout(5);
    httplib::Params params = {{"query", promql}};
    auto response = client.Get("/api/v1/query", params, httplib::Headers{});
    if (!response || response->status != 200) return std::nullopt;
    nlohmann::json body = nlohmann::json::parse(response->body, nullptr, false);
    if (body.is_discarded() || body["data"]["result"].size() != 1) return std::nullopt;
    return std::stod(body["data"]["result"][0]["value"][1].get<std::string>());
  };
  std::optional<double> steps;
  EXPECT_TRUE(Eventually(
      [&] {
        steps = query("sae_train_steps_total{run_id=\"run\",rank=\"0\"}");
        return steps.has_value() && *steps > 0;
      },
      std::chrono::seconds(60)))
      << ReadWholeFile(dir + "/prometheus.log");
  EXPECT_TRUE(Eventually(
      [&] {
        auto up = query("count(up{job=\"sae\"} == 1)");
        return up.has_value() && *up == 3;
      },
      std::chrono::seconds(30)));

  // SIGTERM to one rank: every rank checkpoints and stops at the same step (exit code 3).
  ::kill(trainers[1]->pid(), SIGTERM);
  ExpectTrainersExit(trainers, 3);
  nlohmann::json summary = nlohmann::json::parse(ReadWholeFile(dir + "/out/summary.json"));
  EXPECT_TRUE(summary["stopped"].get<bool>());
  const std::string checkpoint = summary["last_checkpoint"];
  ASSERT_TRUE(std::filesystem::exists(checkpoint + "/state.json")) << checkpoint;
  nlohmann::json state = nlohmann::json::parse(ReadWholeFile(checkpoint + "/state.json"));
  EXPECT_NE(state.dump().find("stream_cursors"), std::string::npos) << state.dump();
  EXPECT_EQ(ReadBatchLog(dir + "/batches.0.jsonl").size(),
            ReadBatchLog(dir + "/batches.1.jsonl").size());
}

TEST_F(DataPlaneTest, AStoppedRunResumesFromItsCheckpointToTheTokenBudget) {
  WriteConfig(1, 1, kSteps, "n_checkpoints: 2\n");
  std::vector<Server> servers;
  servers.push_back(StartServer(0, 1));
  std::vector<std::unique_ptr<ChildProcess>> first;
  first.push_back(StartTrainer(0, 1, servers, FreeLoopbackPort()));
  ExpectTrainersExit(first);
  const std::string halfway = dir + "/out/checkpoints/" + training::CheckpointName(kSteps / 2);
  ASSERT_TRUE(std::filesystem::exists(halfway + "/state.json"));
  std::filesystem::rename(dir + "/out", dir + "/first");
  std::filesystem::remove(dir + "/batches.0.jsonl");

  std::vector<std::unique_ptr<ChildProcess>> resumed;
  resumed.push_back(StartTrainer(
      0, 1, servers, FreeLoopbackPort(),
      {"--resume", dir + "/first/checkpoints/" + training::CheckpointName(kSteps / 2)}));
  ExpectTrainersExit(resumed);
  nlohmann::json summary = nlohmann::json::parse(ReadWholeFile(dir + "/out/summary.json"));
  EXPECT_EQ(summary["steps"], kSteps);
  EXPECT_EQ(summary["tokens"], kSteps * kBatch);
  // Data never rewinds: the resumed half trained on activations after everything served before.
  std::vector<BatchRecord> batches = ReadBatchLog(dir + "/batches.0.jsonl");
  ASSERT_EQ(static_cast<int64_t>(batches.size()), kSteps / 2);
  EXPECT_EQ(batches.front().step, kSteps / 2 + 1);
  EXPECT_GE(batches.front().offset, static_cast<uint64_t>(kSteps * kBatch));
  EXPECT_TRUE(io::ReadSaeLens(dir + "/out/final").ok());
}

TEST_F(DataPlaneTest, ATrainerRefusesAServerOfAnotherRun) {
  WriteConfig(1, 1);
  std::vector<Server> servers;
  servers.push_back(StartServer(0, 1));
  std::vector<std::unique_ptr<ChildProcess>> trainers;
  trainers.push_back(StartTrainer(0, 1, servers, FreeLoopbackPort(), {"--set", "lr=0.01"}));
  // The user's mistake (two run.yaml files for one run): exit 2, as every binary maps
  // FailedPrecondition (services/common/exit_code.h); before the mapping was shared the
  // trainer alone said 1.
  ExpectTrainersExit(trainers, 2);
  EXPECT_NE(trainers[0]->Log().find("config digest"), std::string::npos) << trainers[0]->Log();
}

}  // namespace
}  // namespace sae
