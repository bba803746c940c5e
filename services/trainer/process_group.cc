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
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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
  group->store = tcp_store;
  if (!options.store_prefix.empty()) {
    group->store = c10::make_intrusive<c10d::PrefixStore>(options.store_prefix, tcp_store);
  }
  // Every rank counts itself in, then waits for the others.
  try {
    constexpr char kJoined[] = "sae/joined";
    int64_t joined = group->store->add(kJoined, 1);
    while (joined < options.world_size) {
      if (aborted()) return absl::CancelledError(absl::StrCat(where, ": aborted"));
      if (Clock::now() >= give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat(where, ": ", joined, " of ", options.world_size, " ranks joined within ",
                         absl::FormatDuration(options.rendezvous_timeout)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      joined = group->store->add(kJoined, 0);
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat(where, ": the store went away while the ranks joined: ", Describe(e)));
  }

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
