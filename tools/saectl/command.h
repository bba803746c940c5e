// Shared conventions of saectl's subcommands.
//
// Every subcommand reports its outcome as an absl::Status; RunCommand prints a failure as one
// line ("saectl: error: ...") and maps it to the exit code users and scripts rely on
// (services/common/exit_code.h, the same for every binary): 0 success; 1 a failure (I/O, RPC,
// internal); 2 the user's mistake (bad flag, bad run.yaml, missing file); 3 stopped or timed
// out.
#ifndef SAE_TOOLS_SAECTL_COMMAND_H_
#define SAE_TOOLS_SAECTL_COMMAND_H_

#include <functional>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "services/common/exit_code.h"

namespace sae::saectl {

using service::kExitFailure;
using service::kExitOk;
using service::kExitStopped;
using service::kExitUsage;

// Runs `body`, prints a non-OK status on stderr and stores the exit code in the process-wide
// slot that main() returns.
void RunCommand(const std::function<absl::Status()>& body);

// The exit code main() returns (set by RunCommand).
int& ProcessExitCode();

// Each group of subcommands registers itself on the root app.
void RegisterModelCommands(CLI::App& app);
void RegisterTokenizeCommands(CLI::App& app);
void RegisterTrainCommands(CLI::App& app);
void RegisterSaeCommands(CLI::App& app);
void RegisterRunCommands(CLI::App& app);
void RegisterRunExportCommand(CLI::App& app);  // called by RegisterRunCommands
void RegisterClusterCommands(CLI::App& app);
void RegisterEvalCommands(CLI::App& app);
void RegisterFeaturesCommands(CLI::App& app);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_COMMAND_H_
