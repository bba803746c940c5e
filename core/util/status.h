// Status helpers used across core/: early-return macros for absl::Status and absl::StatusOr.
#ifndef SAE_CORE_UTIL_STATUS_H_
#define SAE_CORE_UTIL_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SAE_STATUS_CONCAT_INNER_(a, b) a##b
#define SAE_STATUS_CONCAT_(a, b) SAE_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status) and returns it from the caller when it is not OK.
#define SAE_RETURN_IF_ERROR(expr)              \
  do {                                         \
    absl::Status sae_status_ = (expr);         \
    if (!sae_status_.ok()) return sae_status_; \
  } while (0)

// `lhs` = the value of `rexpr` (an absl::StatusOr<T>), or returns its status from the caller.
// `lhs` may declare a variable: SAE_ASSIGN_OR_RETURN(auto file, Open(path));
#define SAE_ASSIGN_OR_RETURN(lhs, rexpr) \
  SAE_ASSIGN_OR_RETURN_IMPL_(SAE_STATUS_CONCAT_(sae_statusor_, __LINE__), lhs, rexpr)

#define SAE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)   \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // SAE_CORE_UTIL_STATUS_H_
