// Internal to core/config: SAELens 6's spelling of run.yaml.
//
// SAELens 6 (the `sae-lens` 6.x package on PyPI) renamed some of the seed's keys and moved the
// SAE's own keys into a nested `sae:` block and the W&B keys into a `logger:` block of its
// LanguageModelSAERunnerConfig. ParseRunConfig reads that spelling as well as the seed's; this
// table says what each SAELens 6 name is here. docs/config.md ("SAELens 6 spelling") lists it
// for users, and a test checks that every entry is documented there.
#ifndef SAE_CORE_CONFIG_SAELENS_KEYS_H_
#define SAE_CORE_CONFIG_SAELENS_KEYS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/choices.h"
#include "yaml-cpp/yaml.h"

namespace sae::config::internal {

enum class PeerKeyKind {
  // The same setting under another name: run.yaml key `key`.
  kAlias,
  // A SAELens setting this service has in one form only: the value must be `accepted`, any
  // other value is an error that says what this service does instead.
  kRequired,
  // Changes nothing here (W&B, torch.compile, Hugging Face streaming, ...): accepted; a value
  // other than SAELens's default (`accepted`) warns that it has no effect.
  kNoEffect,
  // Bookkeeping that SAELens writes into every config (versions, verbose, metadata): accepted
  // and ignored whatever its value.
  kRecord,
  // model_from_pretrained_kwargs: read as the `processing` key (ProcessingFromKwargs).
  kProcessing,
};

struct PeerKey {
  // As written, with its block: "hook_name", "sae.k", "logger.wandb_id".
  std::string name;
  PeerKeyKind kind = PeerKeyKind::kRecord;
  // kAlias: the run.yaml key it sets.
  std::string key;
  // kRequired, kNoEffect: the accepted (or default) value in words, e.g. "false", "0.9".
  std::string accepted;
  // kRequired, kNoEffect: whether a value is `accepted`.
  std::function<bool(const YAML::Node& value)> accepts;
  // What this service does instead (kRequired, kNoEffect, kRecord).
  std::string note;
};

// The blocks of SAELens 6's config that hold keys: "sae" and "logger".
bool IsPeerBlock(absl::string_view name);

// The entry for a SAELens 6 name (block-qualified, "sae.k"), or std::nullopt. In the `sae:`
// block every run.yaml key is an alias of itself (sae.k is k, and so are the architectures'
// own keys); the table adds the names that differ.
std::optional<PeerKey> FindPeerKey(absl::string_view name);

// Every entry of the table (not the implicit `sae.<key>` aliases), in documentation order.
const std::vector<PeerKey>& PeerKeys();

// The `processing` that SAELens's model_from_pretrained_kwargs asks for: {} or null
// (TransformerLens's from_pretrained defaults) or fold_ln, center_writing_weights,
// center_unembed and fold_value_biases all true is transformer_lens; all four false is none.
// InvalidArgument naming the flags otherwise (no other combination is implemented).
absl::StatusOr<Processing> ProcessingFromKwargs(const YAML::Node& kwargs);

// A YAML value in one line for messages: `true`, `0.5`, `[null]`, `{center_unembed: false}`.
std::string ShortYaml(const YAML::Node& value);

}  // namespace sae::config::internal

#endif  // SAE_CORE_CONFIG_SAELENS_KEYS_H_
