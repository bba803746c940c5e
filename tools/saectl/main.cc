// saectl: the command-line face of the SAE training service.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "core/util/torch_runtime.h"
#include "tools/saectl/command.h"

int main(int argc, char** argv) {
  sae::UsePassiveOpenMpWaits(argv);
  sae::LogToStderr("saectl");
  CLI::App app{"saectl: train sparse autoencoders on GPT-2 activations, locally or on a cluster"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "saectl 0.1.0");
  sae::saectl::RegisterModelCommands(app);
  sae::saectl::RegisterTokenizeCommands(app);
  sae::saectl::RegisterTrainCommands(app);
  sae::saectl::RegisterRunCommands(app);
  sae::saectl::RegisterClusterCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // CLI11 returns 0 for --help/--version and its own codes for usage errors; ours is 2.
    return code == 0 ? 0 : sae::saectl::kExitUsage;
  }
  return sae::saectl::ProcessExitCode();
}
