// SHA-256 of byte strings (OpenSSL's implementation), for checkpoint chunks and archives; HMAC
// and random secrets for the trainers' rendezvous key.
#ifndef SAE_SERVICES_COMMON_SHA256_H_
#define SAE_SERVICES_COMMON_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace sae::rpc {

// An incremental SHA-256. Update any number of times, then Finish once. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  ~Sha256();

  void Update(absl::string_view bytes);

  // The 32-byte digest of everything passed to Update. The object is spent afterwards.
  std::string Finish();

  // The 32-byte digest of `bytes`.
  static std::string Of(absl::string_view bytes);

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

// HMAC-SHA256 of `message` under `key` (RFC 2104): 32 bytes.
std::string HmacSha256(absl::string_view key, absl::string_view message);

// `count` bytes from OpenSSL's random generator (secrets, nonces). Aborts the process when the
// generator cannot be seeded (nothing secret can be made then).
std::string RandomBytes(size_t count);

// Whether two secrets are equal, in time that depends only on their lengths.
bool SameSecret(absl::string_view given, absl::string_view expected);

}  // namespace sae::rpc

#endif  // SAE_SERVICES_COMMON_SHA256_H_
