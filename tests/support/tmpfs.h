// Test support: a small tmpfs mounted for one test, to fill a disk on purpose. Mounting needs
// root (CAP_SYS_ADMIN); where it is refused, error() says why and the test skips.
#ifndef SAE_TESTS_SUPPORT_TMPFS_H_
#define SAE_TESTS_SUPPORT_TMPFS_H_

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

namespace sae::support {

class Tmpfs {
 public:
  // Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) on `path`, made if missing.
  Tmpfs(const std::string& path, int64_t bytes) : path_(path) {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    const std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", path.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      error_ = "cannot mount a tmpfs on " + path + ": " + std::strerror(errno) +
               " (the test needs root or CAP_SYS_ADMIN)";
      return;
    }
    mounted_ = true;
  }
  // Unmounts (lazily, so that a file a failed test left open does not keep it).
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

  // Writes `name` in 64 KiB pieces until the file system refuses (ENOSPC); returns the bytes
  // written, or -1 when the file fails for another reason.
  int64_t Fill(const std::string& name) const {
    const std::string file = path_ + "/" + name;
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    std::string block(64 << 10, 'f');
    int64_t total = 0;
    while (true) {
      ssize_t n = ::write(fd, block.data(), block.size());
      if (n > 0) {
        total += n;
        continue;
      }
      const int error = errno;
      ::close(fd);
      return n < 0 && error == ENOSPC ? total : -1;
    }
  }

 private:
  std::string path_;
  std::string error_;
  bool mounted_ = false;
};

}  // namespace sae::support

#endif  // SAE_TESTS_SUPPORT_TMPFS_H_
