// The only file of the project that includes c10d's headers (they pull in most of LibTorch).
#include "services/trainer/process_group.h"

#include "services/common/host_port.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef SAE_WITH_NCCL
#include <ATen/cuda/CUDAContext.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/common/sha256.h"

namespace sae::trainer {
namespace {

using Clock = std::chrono::steady_clock;

// How long one attempt of a rank other than 0 to reach rank 0's store lasts.
constexpr int64_t kConnectAttemptMs = 1000;

std::chrono::milliseconds ToChrono(absl::Duration d) {
  return std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// What an exception from c10d says, without the C++ backtrace LibTorch appends.
std::string Describe(const std::exception& e) {
  if (const auto* error = dynamic_cast<const c10::Error*>(&e)) {
    return error->what_without_backtrace();
  }
  return e.what();
}

// ---- The key handshake (see ProcessGroupCollective::Create) ----

constexpr char kNonceKey[] = "sae/nonce";
constexpr char kTicketsKey[] = "sae/tickets";
constexpr auto kPollInterval = std::chrono::milliseconds(50);
// An attempt id longer than this is no honest rank's (they use 16 hex digits).
constexpr size_t kMaxAttemptChars = 64;

std::string TicketKey(int64_t ticket) { return absl::StrCat("sae/ticket/", ticket); }
std::string VerdictKey(const std::string& attempt) { return absl::StrCat("sae/verdict/", attempt); }

std::string Proof(const std::string& key, const char* what, int rank, const std::string& attempt,
                  const std::string& nonce) {
  return absl::BytesToHexString(
      rpc::HmacSha256(key, absl::StrCat("sae-", what, "|", rank, "|", attempt, "|", nonce)));
}

// Where the admitted ranks' backend meets: only holders of the key can name it.
std::string GroupNamespace(const std::string& key, const std::string& nonce) {
  return absl::StrCat(
      "sae/group/", absl::BytesToHexString(rpc::HmacSha256(key, absl::StrCat("sae-group|", nonce)))
                        .substr(0, 32));
}

std::string GetString(c10d::Store& store, const std::string& key) {
  const std::vector<uint8_t> bytes = store.get(key);
  return std::string(bytes.begin(), bytes.end());
}

void SetString(c10d::Store& store, const std::string& key, const std::string& value) {
  store.set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

// One rank's side of the handshake. Store calls may throw (the store went away).
class Handshake {
 public:
  Handshake(c10d::Store& store, const ProcessGroupOptions& options, std::string where,
            Clock::time_point give_up)
      : store_(store), options_(options), where_(std::move(where)), give_up_(give_up) {}

  // Rank 0: publishes the nonce and admits every other rank; returns the group's namespace.
  absl::StatusOr<std::string> Admit() {
    const int others = options_.world_size - 1;
    const std::string nonce = absl::BytesToHexString(rpc::RandomBytes(16));
    SetString(store_, kNonceKey, nonce);
    std::map<int, std::string> admitted;  // rank -> its attempt id
    std::set<int64_t> pending;            // tickets taken but not read yet
    int64_t issued = 0;
    int refused = 0;
    Waiting(absl::StrCat("1 of ", options_.world_size, " ranks"));
    while (static_cast<int>(admitted.size()) < others) {
      const int64_t tickets = store_.add(kTicketsKey, 0);
      for (int64_t ticket = issued + 1; ticket <= tickets; ++ticket) pending.insert(ticket);
      issued = std::max(issued, tickets);
      const size_t before = admitted.size();
      for (auto it = pending.begin(); it != pending.end();) {
        const std::string key = TicketKey(*it);
        if (!store_.check({key})) {
          ++it;  // taken, not written yet
          continue;
        }
        const std::string ticket = GetString(store_, key);
        store_.deleteKey(key);
        it = pending.erase(it);
        if (!Judge(ticket, nonce, admitted)) ++refused;
      }
      if (static_cast<int>(admitted.size()) == others) break;
      if (admitted.size() != before) {
        Waiting(absl::StrCat(admitted.size() + 1, " of ", options_.world_size, " ranks"));
      }
      if (absl::Status waited = Pause(); !waited.ok()) {
        const bool late = waited.code() == absl::StatusCode::kDeadlineExceeded;
        return absl::Status(
            waited.code(),
            absl::StrCat(
                where_, ": ", admitted.size() + 1, " of ", options_.world_size, " ranks joined ",
                late ? absl::StrCat("within ", absl::FormatDuration(options_.rendezvous_timeout))
                     : std::string("before the abort"),
                refused == 0 ? std::string()
                             : absl::StrCat("; refused ", refused,
                                            " knock(s): a wrong generation key or a rank "
                                            "outside the world")));
      }
    }
    for (const auto& [rank, attempt] : admitted) {
      SetString(store_, VerdictKey(attempt),
                absl::StrCat("admitted ", Proof(options_.key, "admit", rank, attempt, nonce)));
    }
    return GroupNamespace(options_.key, nonce);
  }

  // Any other rank: proves the key to rank 0 and waits for its verdict; returns the group's
  // namespace.
  absl::StatusOr<std::string> Knock() {
    Waiting("rank 0's nonce");
    while (!store_.check({kNonceKey})) {
      if (absl::Status waited = Pause(); !waited.ok()) {
        return Late(waited, "rank 0 did not start the handshake");
      }
    }
    const std::string nonce = GetString(store_, kNonceKey);
    const std::string attempt = absl::BytesToHexString(rpc::RandomBytes(8));
    const int64_t ticket = store_.add(kTicketsKey, 1);
    SetString(store_, TicketKey(ticket),
              absl::StrCat(options_.rank, " ", attempt, " ",
                           Proof(options_.key, "join", options_.rank, attempt, nonce)));
    Waiting("rank 0's answer");
    const std::string verdict_key = VerdictKey(attempt);
    while (!store_.check({verdict_key})) {
      if (absl::Status waited = Pause(); !waited.ok()) {
        return Late(waited, "rank 0 did not admit this rank (are all ranks there?)");
      }
    }
    std::string verdict = GetString(store_, verdict_key);
    store_.deleteKey(verdict_key);
    absl::string_view answer = verdict;
    if (absl::ConsumePrefix(&answer, "refused: ")) {
      return absl::PermissionDeniedError(
          absl::StrCat(where_, ": rank 0 refused this rank: ", answer));
    }
    if (!absl::ConsumePrefix(&answer, "admitted ") ||
        !rpc::SameSecret(answer, Proof(options_.key, "admit", options_.rank, attempt, nonce))) {
      return absl::PermissionDeniedError(
          absl::StrCat(where_,
                       ": the rank 0 at the rendezvous address cannot prove it holds this "
                       "generation's key; not joining it"));
    }
    return GroupNamespace(options_.key, nonce);
  }

 private:
  // Reads one ticket "RANK ATTEMPT PROOF": admits its rank, or writes why not under its attempt
  // id. False when refused.
  bool Judge(const std::string& ticket, const std::string& nonce,
             std::map<int, std::string>& admitted) {
    std::vector<std::string> parts = absl::StrSplit(ticket, ' ');
    int rank = -1;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &rank) || parts[1].empty() ||
        parts[1].size() > kMaxAttemptChars) {
      return false;  // no attempt id to answer under
    }
    const std::string& attempt = parts[1];
    std::string why;
    if (rank < 1 || rank >= options_.world_size) {
      why = absl::StrCat("rank ", rank, " is not in a world of ", options_.world_size);
    } else if (!rpc::SameSecret(parts[2], Proof(options_.key, "join", rank, attempt, nonce))) {
      why = absl::StrCat("rank ", rank,
                         " does not hold this generation's key (a process of another run or "
                         "generation, or one not given the key the controller issued)");
    }
    if (!why.empty()) {
      SetString(store_, VerdictKey(attempt), absl::StrCat("refused: ", why));
      return false;
    }
    // A second valid knock for a rank replaces the first: that process restarted (it holds
    // the key), and the first attempt's process is presumably gone.
    if (auto earlier = admitted.find(rank); earlier != admitted.end()) {
      SetString(store_, VerdictKey(earlier->second),
                absl::StrCat("refused: a newer knock of rank ", rank, " replaced this one"));
    }
    admitted[rank] = attempt;
    return true;
  }

  void Waiting(const std::string& what) const {
    if (options_.waiting) options_.waiting(what);
  }

  // One poll interval; Cancelled on an abort, DeadlineExceeded past the rendezvous timeout.
  absl::Status Pause() const {
    if (options_.abort != nullptr && options_.abort->load()) {
      return absl::CancelledError(absl::StrCat(where_, ": aborted"));
    }
    if (Clock::now() >= give_up_) return absl::DeadlineExceededError(where_);
    std::this_thread::sleep_for(kPollInterval);
    return absl::OkStatus();
  }

  absl::Status Late(const absl::Status& waited, const std::string& what) const {
    if (waited.code() != absl::StatusCode::kDeadlineExceeded) return waited;
    return absl::DeadlineExceededError(absl::StrCat(
        where_, ": ", what, " within ", absl::FormatDuration(options_.rendezvous_timeout)));
  }

  c10d::Store& store_;
  const ProcessGroupOptions& options_;
  const std::string where_;
  const Clock::time_point give_up_;
};

}  // namespace

struct ProcessGroupCollective::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::chrono::milliseconds timeout;
  int cuda_device = 0;
};

const char* BackendName(CollectiveBackend backend) {
  return backend == CollectiveBackend::kNccl ? "nccl" : "gloo";
}

CollectiveBackend DefaultBackend() {
#ifdef SAE_WITH_NCCL
  if (at::cuda::is_available()) return CollectiveBackend::kNccl;
#endif
  return CollectiveBackend::kGloo;
}

absl::StatusOr<std::unique_ptr<ProcessGroupCollective>> ProcessGroupCollective::Create(
    const ProcessGroupOptions& options) {
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", options.rank, " of a world of ",
                                                   options.world_size, " does not exist"));
  }
  absl::StatusOr<service::HostPort> split = service::SplitHostPort(options.rendezvous, "--rendezvous");
  if (!split.ok()) return split.status();
  const std::string host = split->host;
  const int port = split->port;
  if (port == 0) {
    return absl::InvalidArgumentError("--rendezvous needs a fixed port (every rank must know it)");
  }
#ifndef SAE_WITH_NCCL
  if (options.backend == CollectiveBackend::kNccl) {
    return absl::InvalidArgumentError(
        "this build has no NCCL backend: configure with -DSAE_WITH_NCCL=ON against a CUDA "
        "LibTorch, or use gloo");
  }
#endif

  auto group = std::make_unique<Group>();
  group->timeout = ToChrono(options.collective_timeout);
  group->cuda_device = options.cuda_device;
  const std::string where = absl::StrCat("rendezvous at ", options.rendezvous, " (rank ",
                                         options.rank, " of ", options.world_size, ")");
  auto aborted = [&] { return options.abort != nullptr && options.abort->load(); };
  const Clock::time_point give_up = Clock::now() + ToChrono(options.rendezvous_timeout);
  // Rank 0 starts the store at once; the others try to connect in short attempts, so that an
  // abort is noticed while rank 0 is not listening yet.
  c10::intrusive_ptr<c10d::Store> tcp_store;
  if (options.rank != 0 && options.waiting) {
    options.waiting(absl::StrCat("rank 0's store at ", options.rendezvous));
  }
  while (tcp_store == nullptr) {
    if (aborted()) return absl::CancelledError(absl::StrCat(where, ": aborted"));
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - Clock::now());
    try {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<uint16_t>(port);
      store_options.isServer = options.rank == 0;
      store_options.numWorkers = options.world_size;
      store_options.waitWorkers = false;
      store_options.timeout = options.rank == 0
                                  ? ToChrono(options.rendezvous_timeout)
                                  : std::clamp(left, std::chrono::milliseconds(100),
                                               std::chrono::milliseconds(kConnectAttemptMs));
      tcp_store = c10::make_intrusive<c10d::TCPStore>(host, store_options);
      tcp_store->setTimeout(ToChrono(options.rendezvous_timeout));
    } catch (const std::exception& e) {
      if (options.rank == 0)
        return absl::UnavailableError(absl::StrCat(where, " failed: ", Describe(e)));
      if (Clock::now() >= give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat(where, ": rank 0's store did not answer within ",
                         absl::FormatDuration(options.rendezvous_timeout), ": ", Describe(e)));
      }
    }
  }
  c10::intrusive_ptr<c10d::Store> run_store = tcp_store;
  if (!options.store_prefix.empty()) {
    run_store = c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, tcp_store);
  }
  // Every rank proves the key to rank 0, which admits them all; the backend then meets in the
  // namespace only key holders can name.
  std::string group_namespace;
  try {
    Handshake handshake(*run_store, options, where, give_up);
    absl::StatusOr<std::string> admitted =
        options.rank == 0 ? handshake.Admit() : handshake.Knock();
    if (!admitted.ok()) return admitted.status();
    group_namespace = *std::move(admitted);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat(where, ": the store went away while the ranks joined: ", Describe(e)));
  }
  group->store = c10::make_intrusive<c10d::PrefixStore>(group_namespace, run_store);

  try {
    if (options.backend == CollectiveBackend::kGloo) {
      // The group's own timeout bounds its rendezvous (the TCPStore's wait for the workers
      // returns quietly when it times out); each collective passes collective_timeout.
      auto gloo = c10d::ProcessGroupGloo::Options::create(ToChrono(options.rendezvous_timeout));
      std::string bind = options.bind_address;
      if (bind.empty() && IsLoopback(host)) bind = "127.0.0.1";
      gloo->devices.push_back(bind.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                           : c10d::ProcessGroupGloo::createDeviceForHostname(bind));
      // One thread: a step issues its collectives one at a time.
      gloo->threads = 1;
      group->group = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, options.rank,
                                                                 options.world_size, gloo);
    } else {
#ifdef SAE_WITH_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = group->timeout;
      group->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(group->store, options.rank,
                                                                 options.world_size, nccl);
#endif
    }
  } catch (const std::exception& e) {
    const std::string what = Describe(e);
    if (what.find("imeout") != std::string::npos || what.find("imed out") != std::string::npos) {
      return absl::DeadlineExceededError(
          absl::StrCat(where, ": not every rank joined within ",
                       absl::FormatDuration(options.rendezvous_timeout), ": ", what));
    }
    return absl::UnavailableError(absl::StrCat(
        where, ": creating the ", BackendName(options.backend), " process group failed: ", what));
  }
  return std::unique_ptr<ProcessGroupCollective>(new ProcessGroupCollective(
      std::move(group), options.rank, options.world_size, options.backend));
}

ProcessGroupCollective::ProcessGroupCollective(std::unique_ptr<Group> group, int rank,
                                               int world_size, CollectiveBackend backend)
    : group_(std::move(group)), rank_(rank), world_size_(world_size), backend_(backend) {}

ProcessGroupCollective::~ProcessGroupCollective() = default;

double ProcessGroupCollective::TakeCollectiveSeconds() {
  double seconds = collective_seconds_;
  collective_seconds_ = 0;
  return seconds;
}

namespace {

// Runs one collective on `tensor` (moved to the CUDA device and back for NCCL when it lives on
// the CPU) and waits for it.
template <typename Issue>
absl::Status RunCollective(const char* name, at::Tensor& tensor, CollectiveBackend backend,
                           int cuda_device, std::chrono::milliseconds timeout, Issue issue) {
  if (!tensor.is_contiguous()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " needs a contiguous tensor"));
  }
  try {
    std::vector<at::Tensor> tensors = {tensor};
    const bool staged = backend == CollectiveBackend::kNccl && !tensor.is_cuda();
    if (staged)
      tensors[0] = tensor.to(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_device)));
    c10::intrusive_ptr<c10d::Work> work = issue(tensors);
    work->wait(timeout);
    if (staged) tensor.copy_(tensors[0]);
  } catch (const std::exception& e) {
    const std::string what = Describe(e);
    if (what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos) {
      return absl::DeadlineExceededError(absl::StrCat(
          name, " did not complete within the collective timeout (a peer hangs?): ", what));
    }
    return absl::UnavailableError(absl::StrCat(name, " failed (a peer is gone?): ", what));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ProcessGroupCollective::AllReduceSum(at::Tensor& tensor) {
  const auto start = Clock::now();
  absl::Status status = RunCollective("all-reduce", tensor, backend_, group_->cuda_device,
                                      group_->timeout, [&](std::vector<at::Tensor>& tensors) {
                                        c10d::AllreduceOptions options;
                                        options.reduceOp = c10d::ReduceOp::SUM;
                                        options.timeout = group_->timeout;
                                        return group_->group->allreduce(tensors, options);
                                      });
  collective_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  return status;
}

absl::Status ProcessGroupCollective::Broadcast(at::Tensor& tensor, int root) {
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("broadcast from rank ", root, " of ", world_size_));
  }
  const auto start = Clock::now();
  absl::Status status = RunCollective("broadcast", tensor, backend_, group_->cuda_device,
                                      group_->timeout, [&](std::vector<at::Tensor>& tensors) {
                                        c10d::BroadcastOptions options;
                                        options.rootRank = root;
                                        options.timeout = group_->timeout;
                                        return group_->group->broadcast(tensors, options);
                                      });
  collective_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
  return status;
}

absl::StatusOr<int64_t> AllReduceMax(int64_t value, sparse::Collective* group) {
  if (group == nullptr || group->world_size() == 1) return value;
  at::Tensor slots = at::zeros({group->world_size()}, at::kLong);
  slots[group->rank()] = value;
  absl::Status reduced = group->AllReduceSum(slots);
  if (!reduced.ok()) return reduced;
  return slots.max().item<int64_t>();
}

}  // namespace sae::trainer
