// The trainers' data-parallel group on torch's c10d: a TCPStore rendezvous hosted by rank 0,
// then ProcessGroupGloo (CPU builds) or ProcessGroupNCCL (builds configured with
// -DSAE_WITH_NCCL=ON against a CUDA LibTorch). Everything else in the trainer talks to the
// group through sparse::Collective only, as the maths does.
#ifndef SAE_SERVICES_TRAINER_PROCESS_GROUP_H_
#define SAE_SERVICES_TRAINER_PROCESS_GROUP_H_

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/sae/collective.h"

namespace sae::trainer {

enum class CollectiveBackend {
  kGloo,  // CPU tensors over TCP; always built
  kNccl,  // CUDA tensors over NVLink/IB/TCP; only in SAE_WITH_NCCL builds
};

// "gloo" or "nccl".
const char* BackendName(CollectiveBackend backend);

// kNccl in SAE_WITH_NCCL builds when a CUDA device is present, kGloo otherwise.
CollectiveBackend DefaultBackend();

struct ProcessGroupOptions {
  int rank = 0;
  int world_size = 1;
  // host:port (or [v6]:port) of the c10d TCPStore. Rank 0 hosts it on that port, listening on
  // every interface; the other ranks connect to it.
  std::string rendezvous;
  // Address this rank's Gloo transport binds and advertises to its peers. Empty: 127.0.0.1 when
  // the rendezvous host is a loopback name or address, else the address of this machine's
  // hostname (c10d's default device).
  std::string bind_address;
  CollectiveBackend backend = CollectiveBackend::kGloo;
  // How long rank 0 waits for every rank to join, and a rank waits for the store.
  absl::Duration rendezvous_timeout = absl::Minutes(5);
  // How long one collective may take before it fails (a peer died or hangs).
  absl::Duration collective_timeout = absl::Minutes(5);
  // NCCL only: the CUDA device of this rank (tensors on the CPU are copied there and back).
  int cuda_device = 0;
  // The group's keys in the TCPStore start with this, so that ranks of another group (an older
  // generation still talking to the same port) never meet this one. Default "": none.
  std::string store_prefix;
  // The generation key: a secret the controller issues with the assignment (derived from a
  // secret of its own, the run id and the generation). Every rank proves to rank 0 that it holds
  // it, and rank 0 proves it back, before a rank joins (see Create); a process without it is
  // refused and told why. Default "": the same handshake with an empty key (a group started by
  // hand without --rendezvous-key), which keeps out only processes given another key.
  std::string key;
  // Optional: when it turns true, a rendezvous in progress gives up with Cancelled (polled
  // every 50 ms while waiting for rank 0's store and for the other ranks to join).
  const std::atomic<bool>* abort = nullptr;
  // Optional: called on the calling thread whenever the rendezvous starts waiting for
  // something, with what ("rank 0's store at HOST:PORT", "rank 0's answer", "1 of 3 ranks").
  // The trainer logs it; tests use it to act on a rendezvous known to be waiting.
  std::function<void(const std::string& what)> waiting;
};

// A sparse::Collective over a c10d process group. Thread-compatible: one thread issues the
// collectives, in the same order on every rank.
class ProcessGroupCollective final : public sparse::Collective {
 public:
  // Joins the group: blocks until every rank has joined (or rendezvous_timeout passes): rank 0
  // starts the TCPStore, the others connect to it (retrying until it listens) and knock with
  // proof of the key; once rank 0 has admitted every rank, the backend connects them.
  //
  // The handshake, under store_prefix in the store: rank 0 publishes a random nonce N. A rank
  // r picks a random attempt id A, takes a ticket (a counter) and writes under it
  // "r A HMAC(key, join|r|A|N)". Rank 0 checks each ticket: a wrong proof or a rank outside the
  // world gets the verdict "refused: WHY" under A at once (a valid knock for a rank already
  // knocked replaces the earlier one, whose process restarted); once every rank has a valid
  // proof, each gets "admitted HMAC(key, admit|r|A|N)", which the rank checks (so a rank 0
  // without the key is refused too). The backend then meets under a namespace
  // derived from HMAC(key, N), which a process without the key cannot name; the key itself
  // never enters the store. The store has no authentication of its own: whoever reaches the
  // port can still disturb a rendezvous (write tickets, fill the store), so the port must stay
  // inside the cluster network (docs/operations.md, Security).
  //
  // InvalidArgument for a bad rank, world size or address, or a backend this build lacks;
  // Unavailable when the rendezvous fails (the message names the address and the cause);
  // PermissionDenied when rank 0 refused this rank's key, or rank 0 could not prove the key;
  // DeadlineExceeded when a rank does not come (rank 0's message counts the refused knocks);
  // Cancelled when options.abort turned true.
  static absl::StatusOr<std::unique_ptr<ProcessGroupCollective>> Create(
      const ProcessGroupOptions& options);

  ~ProcessGroupCollective() override;
  ProcessGroupCollective(const ProcessGroupCollective&) = delete;
  ProcessGroupCollective& operator=(const ProcessGroupCollective&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  // Unavailable when a peer is gone or the collective failed, DeadlineExceeded after
  // collective_timeout; the group is unusable afterwards.
  absl::Status AllReduceSum(at::Tensor& tensor) override;
  absl::Status Broadcast(at::Tensor& tensor, int root) override;

  CollectiveBackend backend() const { return backend_; }
  // Seconds spent inside collectives since the last call (the all-reduce duration metric).
  double TakeCollectiveSeconds() override;

 private:
  struct Group;  // the c10d objects; c10d headers stay in process_group.cc
  ProcessGroupCollective(std::unique_ptr<Group> group, int rank, int world_size,
                         CollectiveBackend backend);

  std::unique_ptr<Group> group_;
  const int rank_;
  const int world_size_;
  const CollectiveBackend backend_;
  double collective_seconds_ = 0;
};

// The largest of every rank's `value`, with one all-reduce of world_size int64 (each rank
// fills only its own slot). Collective: every rank calls it at the same point. A null group or
// a group of one returns `value`.
absl::StatusOr<int64_t> AllReduceMax(int64_t value, sparse::Collective* group);

}  // namespace sae::trainer

#endif  // SAE_SERVICES_TRAINER_PROCESS_GROUP_H_
