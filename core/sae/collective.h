// The data-parallel group a trainer belongs to, as the SAE step needs it: a narrow interface in
// the spirit of c10d's ProcessGroup, so the maths does not know whether Gloo, NCCL or nothing
// sits behind it.
#ifndef SAE_CORE_SAE_COLLECTIVE_H_
#define SAE_CORE_SAE_COLLECTIVE_H_

#include <ATen/ATen.h>

#include "absl/status/status.h"

namespace sae::sparse {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Sums a contiguous tensor over every rank, in place. Blocks until done; Unavailable or
  // DeadlineExceeded when a peer is gone.
  virtual absl::Status AllReduceSum(at::Tensor& tensor) = 0;
  // Replaces a contiguous tensor on every rank with rank `root`'s, in place.
  virtual absl::Status Broadcast(at::Tensor& tensor, int root) = 0;
  // Seconds spent in collectives since the last call (0 where nothing is measured).
  virtual double TakeCollectiveSeconds() { return 0; }
};

// A group of one: every collective is a no-op.
class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(at::Tensor&) override { return absl::OkStatus(); }
  absl::Status Broadcast(at::Tensor&, int) override { return absl::OkStatus(); }
};

}  // namespace sae::sparse

#endif  // SAE_CORE_SAE_COLLECTIVE_H_
