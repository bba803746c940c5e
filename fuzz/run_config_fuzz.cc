// run.yaml parsing and validation on arbitrary text. Properties: ParseRunConfig never crashes
// (nor throws); a config it accepts survives ToYaml and ParseRunConfig unchanged (operator==,
// run_config.h's contract), validates again (ValidateRunConfig is idempotent), converts to JSON,
// and resolves against GPT-2 small's dimensions or fails with a status.
#include "absl/strings/str_cat.h"
#include "core/config/run_config.h"
#include "core/model/gpt2_config.h"
#include "fuzz/scratch_dir.h"

using sae::fuzz::PropertyFailed;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = sae::config::ParseRunConfig(sae::fuzz::AsAbslBytes(data, size), "fuzz.yaml");
  if (!config.ok()) return 0;

  const std::string yaml = sae::config::ToYaml(*config);
  auto again = sae::config::ParseRunConfig(yaml, "again.yaml");
  if (!again.ok()) {
    PropertyFailed(absl::StrCat(
        "ToYaml of an accepted config is refused: ", again.status().ToString(), "\n", yaml));
  }
  if (*again != *config) PropertyFailed("ToYaml then ParseRunConfig changed the config:\n" + yaml);

  sae::config::RunConfig copy = *config;
  absl::Status valid = sae::config::ValidateRunConfig(copy);
  if (!valid.ok())
    PropertyFailed("ValidateRunConfig refuses an accepted config: " + valid.ToString());
  (void)sae::config::ToJson(*config).dump();

  auto small = sae::model::Gpt2Preset("gpt2-small");
  if (!small.ok()) PropertyFailed("no gpt2-small preset");
  (void)sae::config::ResolveAgainstModel(copy, small->dims());
  return 0;
}
