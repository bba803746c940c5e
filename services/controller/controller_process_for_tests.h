// Test support for the controller's process-level tests (crash, large checkpoint): a real
// sae-controller child process on a free loopback port, its /metrics, and a client.
#ifndef SAE_SERVICES_CONTROLLER_CONTROLLER_PROCESS_FOR_TESTS_H_
#define SAE_SERVICES_CONTROLLER_CONTROLLER_PROCESS_FOR_TESTS_H_

#include <httplib.h>
#include <signal.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/util/files.h"
#include "gtest/gtest.h"
#include "services/common/controller_client.h"
#include "support/binaries.h"
#include "support/child_process.h"
#include "support/ports.h"

namespace sae::controller::testing_support {

// A sae-controller child process on a free loopback port (it writes the port it got to a file).
class ControllerProcess {
 public:
  ControllerProcess(const std::string& data_dir, const std::string& work_dir,
                    int lease_seconds = 60)
      : port_file_(absl::StrCat(work_dir, "/port.", counter_++)),
        metrics_port_(support::FreeLoopbackPort()),
        process_({support::BinaryPath("sae-controller"), "--listen", "127.0.0.1:0", "--data-dir",
                  data_dir, "--port-file", port_file_, "--lease-seconds",
                  absl::StrCat(lease_seconds), "--metrics-port", absl::StrCat(metrics_port_)},
                 absl::StrCat(work_dir, "/controller.log")) {
    absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (absl::Now() < give_up && !process_.Exited()) {
      auto text = ReadFile(port_file_);
      int port = 0;
      if (text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port)) {
        address_ = absl::StrCat("127.0.0.1:", port);
        return;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "sae-controller did not start; see " << process_.log_path();
  }

  const std::string& address() const { return address_; }
  pid_t pid() const { return process_.pid(); }

  // The value of the unlabelled series `name` on /metrics; -1 when it cannot be read.
  double Metric(const std::string& name) const {
    httplib::Client http("127.0.0.1", metrics_port_);
    httplib::Result got = http.Get("/metrics");
    if (!got || got->status != 200) return -1;
    const size_t at = got->body.find("\n" + name + " ");
    double value = -1;
    if (at == std::string::npos ||
        !absl::SimpleAtod(got->body.substr(at + name.size() + 2,
                                           got->body.find('\n', at + 1) - at - name.size() - 2),
                          &value)) {
      return -1;
    }
    return value;
  }

  // The process's peak resident memory (VmHWM) in bytes; -1 when it cannot be read.
  int64_t PeakResidentBytes() const {
    // Not ReadFile: it reads st_size bytes, and /proc files report 0.
    std::ifstream file(absl::StrCat("/proc/", process_.pid(), "/status"));
    std::optional<std::string> status;
    status.emplace(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) return -1;
    const size_t at = status->find("VmHWM:");
    int64_t kib = 0;
    if (at == std::string::npos ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(
                              status->substr(at + 6, status->find('\n', at) - at - 6), "kB")),
                          &kib)) {
      return -1;
    }
    return kib * 1024;
  }

  // SIGKILL at once, or SIGTERM (SIGKILL after 10 s); returns once the process is reaped.
  void Stop(int signal) {
    if (signal == SIGKILL) {
      process_.KillHard();
    } else {
      process_.Stop();
    }
  }

 private:
  static inline int counter_ = 0;
  const std::string port_file_;
  const int metrics_port_;
  support::ChildProcess process_;
  std::string address_;
};

inline std::unique_ptr<client::ControllerClient> Connect(
    const std::string& address, absl::Duration timeout = absl::Seconds(10)) {
  client::ControllerClientOptions options;
  options.address = address;
  options.timeout = timeout;
  return std::move(*client::ControllerClient::Connect(options));
}

}  // namespace sae::controller::testing_support

#endif  // SAE_SERVICES_CONTROLLER_CONTROLLER_PROCESS_FOR_TESTS_H_
