// What a worker's /healthz reports, set once the parts it checks exist.
//
// The metrics server (and its /healthz) starts before a worker has registered with the
// controller; the worker binds its check here when it can, and unbinds it before the checked
// objects go away. Until then, and after, the process counts as healthy.
#ifndef SAE_SERVICES_COMMON_HEALTH_H_
#define SAE_SERVICES_COMMON_HEALTH_H_

#include <functional>
#include <mutex>
#include <utility>

#include "absl/status/status.h"

namespace sae::service {

// Thread-safe.
class HealthSource {
 public:
  using Check = std::function<absl::Status()>;

  // The bound check's answer; OK when none is bound.
  absl::Status Evaluate() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return check_ ? check_() : absl::OkStatus();
  }

  // Binds `check` for the life of the returned object (which must not outlive this source).
  class Binding {
   public:
    Binding(HealthSource* source, Check check) : source_(source) {
      if (source_ == nullptr) return;
      std::lock_guard<std::mutex> lock(source_->mutex_);
      source_->check_ = std::move(check);
    }
    ~Binding() {
      if (source_ == nullptr) return;
      std::lock_guard<std::mutex> lock(source_->mutex_);
      source_->check_ = nullptr;
    }
    Binding(const Binding&) = delete;
    Binding& operator=(const Binding&) = delete;

   private:
    HealthSource* source_;
  };

 private:
  mutable std::mutex mutex_;
  Check check_;
};

}  // namespace sae::service

#endif  // SAE_SERVICES_COMMON_HEALTH_H_
