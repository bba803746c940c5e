// Test support: a certificate authority made for one test, with the openssl command-line tool,
// and a server certificate it signs, so that TLS is tested as deployed (a CA file on the client,
// a chain and key on the server) rather than with a self-signed certificate.
#ifndef SAE_TESTS_SUPPORT_TEST_CERTIFICATES_H_
#define SAE_TESTS_SUPPORT_TEST_CERTIFICATES_H_

#include <string>

#include "absl/status/statusor.h"

namespace sae::support {

// PEM files in one folder.
struct TestCertificates {
  std::string ca;           // the CA's certificate: what clients trust (--tls-ca)
  std::string server_cert;  // a server certificate the CA signed, for 127.0.0.1 and localhost
  std::string server_key;   // its key
  std::string other_ca;     // an unrelated CA's certificate: a client trusting it must fail
};

// Makes the files in `dir` (EC P-256 keys, valid for a day). Internal when openssl fails.
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_TEST_CERTIFICATES_H_
