// Test support: where the build put the binaries a test runs, and where the sources are.
#ifndef SAE_TESTS_SUPPORT_BINARIES_H_
#define SAE_TESTS_SUPPORT_BINARIES_H_

#include <string>

namespace sae::support {

// The build folder: $SAE_BINARY_DIR (set by sae_test for every test CTest runs), else found
// from the running test's own path (<build>/tests/<test>).
std::string BuildDir();

// <build>/bin, where sae-controller, sae-activation-server, sae-trainer and saectl are.
std::string BinDir();

// <build>/bin/`name`.
std::string BinaryPath(const std::string& name);

// <build>/bin/saectl.
std::string SaectlPath();

// <build>/tests/`name`: test-only executables (sae_fake_worker, ...).
std::string TestBinaryPath(const std::string& name);

// The source tree: $SAE_SOURCE_DIR (set by sae_test), else "." (a test run from the source
// tree by hand).
std::string SourceDir();

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_BINARIES_H_
