// What the data-plane tests need to run real processes on 127.0.0.1: free ports, temporary
// folders, child processes that never outlive the test, and small HTTP/file helpers.
#ifndef SAE_TESTS_DATA_PLANE_LOOPBACK_H_
#define SAE_TESTS_DATA_PLANE_LOOPBACK_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace sae::testing_loopback {

// A port on 127.0.0.1 that was free a moment ago (another process may take it before use).
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

// A fresh folder under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sae_data_plane_test") {
    const char* base = getenv("TMPDIR") != nullptr ? getenv("TMPDIR") : "/tmp";
    std::string pattern = std::string(base) + "/" + prefix + ".XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

// A child process with stdout and stderr in a log file. Killed when this object is destroyed,
// and by the kernel when the test process dies first (PR_SET_PDEATHSIG), so it never outlives
// a test.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path)
      : log_path_(log_path) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log, STDOUT_FILENO);
      ::dup2(log, STDERR_FILENO);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(log);
  }
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  std::string Log() const { return ReadWholeFile(log_path_); }

  // Whether it has exited (and is reaped); the exit status is then in exit_status().
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_status_ = status;
    }
    return pid_ <= 0;
  }

  // Waits for the exit for at most `timeout`; true when it exited.
  bool WaitForExit(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!Exited() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Exited();
  }

  // The exit code, or -1 while running / when killed by a signal (then signal() says which).
  int exit_code() const { return WIFEXITED(exit_status_) ? WEXITSTATUS(exit_status_) : -1; }
  int signal() const { return WIFSIGNALED(exit_status_) ? WTERMSIG(exit_status_) : 0; }

  // SIGKILL at once, reaped.
  void KillHard() {
    if (Exited()) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_status_ = status;
    pid_ = -1;
  }

  // SIGTERM, then SIGKILL after `grace`; returns once it is reaped.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    if (Exited()) return;
    ::kill(pid_, SIGTERM);
    if (!WaitForExit(grace)) KillHard();
  }

 private:
  pid_t pid_ = -1;
  int exit_status_ = -1;
  std::string log_path_;
};

// Polls `ready` every 20 ms for at most `timeout`.
inline bool Eventually(const std::function<bool()>& ready, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ready();
}

// The path of executable `name` in PATH or /usr/bin, or "" when there is none.
inline std::string FindExecutable(const std::string& name) {
  std::string path = getenv("PATH") != nullptr ? getenv("PATH") : "";
  path += ":/usr/bin";
  std::stringstream folders(path);
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    if (folder.empty()) continue;
    std::string candidate = folder + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace sae::testing_loopback

#endif  // SAE_TESTS_DATA_PLANE_LOOPBACK_H_
