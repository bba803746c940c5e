// saectl model train (model_train_command.cc), registered under `saectl model`.
#ifndef SAE_TOOLS_SAECTL_MODEL_TRAIN_COMMAND_H_
#define SAE_TOOLS_SAECTL_MODEL_TRAIN_COMMAND_H_

#include "CLI/CLI.hpp"

namespace sae::saectl {

void RegisterModelTrainCommand(CLI::App& model);

}  // namespace sae::saectl

#endif  // SAE_TOOLS_SAECTL_MODEL_TRAIN_COMMAND_H_
