// saectl: the command-line face of the SAE training service.
#include <cstdio>
#include <string_view>

#include "CLI/CLI.hpp"
#include "core/util/torch_runtime.h"
#include "tools/saectl/command.h"

int main(int argc, char** argv) {
  // Commands that compute with LibTorch re-exec with passive OpenMP waits (idle threads sleep
  // instead of spinning); the controller's commands skip the second start-up.
  if (argc > 1) {
    const std::string_view command = argv[1];
    if (command == "model" || command == "train" || command == "cache" || command == "sae" ||
        command == "eval" || command == "features") {
      sae::UsePassiveOpenMpWaits(argv);
    }
  }
  sae::LogToStderr("saectl");
  CLI::App app{"saectl: train sparse autoencoders on GPT-2 activations, locally or on a cluster"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "saectl 0.1.0");
  sae::saectl::RegisterModelCommands(app);
  sae::saectl::RegisterTokenizeCommands(app);
  sae::saectl::RegisterTrainCommands(app);
  sae::saectl::RegisterSaeCommands(app);
  sae::saectl::RegisterRunCommands(app);
  sae::saectl::RegisterClusterCommands(app);
  sae::saectl::RegisterEvalCommands(app);
  sae::saectl::RegisterFeaturesCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // CLI11 returns 0 for --help/--version and its own codes for usage errors; ours is 2.
    return code == 0 ? 0 : sae::saectl::kExitUsage;
  }
  return sae::saectl::ProcessExitCode();
}
