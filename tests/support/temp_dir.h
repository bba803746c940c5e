// Test support: a temporary folder that removes itself.
#ifndef SAE_TESTS_SUPPORT_TEMP_DIR_H_
#define SAE_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace sae::support {

// A fresh folder under $TMPDIR (or /tmp), named `prefix`.XXXXXX, removed with everything in it
// on destruction (after giving its owner back the rights a test may have taken away). A folder
// that cannot be made fails the current test, and path() is then empty.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sae_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // path() + "/" + name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

  // Writes `contents` to `name` (parent folders made) and returns its full path; a failure
  // fails the current test.
  std::string Write(const std::string& name, const std::string& contents) const;

 private:
  std::string path_;
};

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_TEMP_DIR_H_
