// sae_fake_worker: a stand-in for sae-activation-server and sae-trainer in saectl's tests. It
// takes the flags `saectl cluster up` gives them (--controller ADDR --listen HOST:PORT
// --metrics-port P, and --threads N / --work-dir DIR, which it ignores) and follows the
// controller's assignments with tests/support/fake_worker.h. The role is the name it runs
// under: a link named sae-trainer is a trainer, anything else an activation server.
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "CLI/CLI.hpp"
#include "support/fake_worker.h"

int main(int argc, char** argv) {
  std::string controller, listen, work_dir;
  int metrics_port = -1;
  int threads = 0;
  CLI::App app{"sae_fake_worker: follows controller assignments without doing the work"};
  app.add_option("--controller", controller)->required();
  app.add_option("--listen", listen)->required();
  app.add_option("--metrics-port", metrics_port);
  app.add_option("--threads", threads);
  app.add_option("--work-dir", work_dir);
  CLI11_PARSE(app, argc, argv);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sae::support::FakeWorkerOptions options;
  options.controller = controller;
  options.address = listen;
  options.auth_token = sae::rpc::FlagOrEnv("", sae::rpc::kAuthTokenEnv);
  options.role = std::filesystem::path(argv[0]).filename() == "sae-trainer"
                     ? sae::v1::WORKER_ROLE_TRAINER
                     : sae::v1::WORKER_ROLE_ACTIVATION_SERVER;
  auto worker = sae::support::FakeWorker::Start(options);
  if (worker == nullptr) return 1;
  std::fprintf(stderr, "fake %s %s registered as %s\n", argv[0], listen.c_str(),
               worker->id().c_str());
  int received = 0;
  sigwait(&signals, &received);
  worker->Vanish();
  return 0;
}
