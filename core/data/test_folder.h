// Test support: a temporary folder that tests write dataset files into. Not part of sae_data.
#ifndef SAE_CORE_DATA_TEST_FOLDER_H_
#define SAE_CORE_DATA_TEST_FOLDER_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "core/util/files.h"
#include "gtest/gtest.h"

namespace sae::data {

// A fresh folder under $TMPDIR (or /tmp), removed with its contents on destruction.
class TestFolder {
 public:
  TestFolder() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/sae_data_test_XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TestFolder() {
    std::error_code ignored;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ignored);
    std::filesystem::remove_all(path_, ignored);
  }
  TestFolder(const TestFolder&) = delete;
  TestFolder& operator=(const TestFolder&) = delete;

  const std::string& path() const { return path_; }

  // Writes `contents` to `name` (parents created) and returns its full path.
  std::string Write(const std::string& name, const std::string& contents) const {
    std::string file = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(file).parent_path());
    absl::Status status = WriteFileAtomically(file, contents);
    EXPECT_TRUE(status.ok()) << status;
    return file;
  }

 private:
  std::string path_;
};

}  // namespace sae::data

#endif  // SAE_CORE_DATA_TEST_FOLDER_H_
