#include "support/test_certificates.h"

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace sae::support {
namespace {

absl::Status Openssl(const std::string& args, const std::string& dir) {
  const std::string line =
      absl::StrCat("openssl ", args, " >", dir, "/openssl.log 2>&1 </dev/null");
  if (std::system(line.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", line, "; see ", dir, "/openssl.log"));
  }
  return absl::OkStatus();
}

absl::Status MakeCa(const std::string& name, const std::string& dir) {
  return Openssl(absl::StrCat("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                              "-nodes -days 1 -subj /CN=",
                              name, " -keyout ", dir, "/", name, ".key -out ", dir, "/", name,
                              ".pem"),
                 dir);
}

}  // namespace

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  TestCertificates files{dir + "/sae-test-ca.pem", dir + "/server.pem", dir + "/server.key",
                         dir + "/sae-other-ca.pem"};
  if (absl::Status made = MakeCa("sae-test-ca", dir); !made.ok()) return made;
  if (absl::Status made = MakeCa("sae-other-ca", dir); !made.ok()) return made;
  if (absl::Status made = Openssl(
          absl::StrCat("req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                       "-subj /CN=localhost -keyout ",
                       files.server_key, " -out ", dir, "/server.csr"),
          dir);
      !made.ok()) {
    return made;
  }
  std::ofstream(dir + "/server.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  if (absl::Status made = Openssl(
          absl::StrCat("x509 -req -in ", dir, "/server.csr -CA ", files.ca, " -CAkey ", dir,
                       "/sae-test-ca.key -CAcreateserial -days 1 -extfile ", dir,
                       "/server.ext -out ", files.server_cert),
          dir);
      !made.ok()) {
    return made;
  }
  return files;
}

}  // namespace sae::support
