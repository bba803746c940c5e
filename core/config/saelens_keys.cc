#include "core/config/saelens_keys.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/codec.h"
#include "core/config/field.h"

namespace sae::config::internal {
namespace {

using Predicate = std::function<bool(const YAML::Node&)>;

bool IsScalarText(const YAML::Node& value, absl::string_view text) {
  return value.IsScalar() && value.Scalar() == text;
}

Predicate Boolean(bool expected) {
  return [expected](const YAML::Node& value) {
    if (!value.IsScalar()) return false;
    const std::string& t = value.Scalar();
    if (expected) return t == "true" || t == "True" || t == "TRUE";
    return t == "false" || t == "False" || t == "FALSE";
  };
}

Predicate Number(double expected) {
  return [expected](const YAML::Node& value) {
    if (!value.IsScalar()) return false;
    std::optional<double> number = ReadDouble(value.Scalar());
    return number && *number == expected;
  };
}

Predicate Text(std::vector<std::string> allowed) {
  return [allowed = std::move(allowed)](const YAML::Node& value) {
    for (const std::string& text : allowed) {
      if (IsScalarText(value, text)) return true;
    }
    return false;
  };
}

bool IsNullValue(const YAML::Node& value) { return !value.IsDefined() || value.IsNull(); }

Predicate NullOr(Predicate other) {
  return [other = std::move(other)](const YAML::Node& value) {
    return IsNullValue(value) || other(value);
  };
}

// An empty list or mapping (or null).
bool IsEmpty(const YAML::Node& value) {
  return IsNullValue(value) || ((value.IsSequence() || value.IsMap()) && value.size() == 0);
}

// SAELens's seqpos_slice (None,) is the whole context: every element null.
bool IsWholeSlice(const YAML::Node& value) {
  if (IsNullValue(value)) return true;
  if (!value.IsSequence()) return false;
  for (const YAML::Node& element : value) {
    if (!IsNullValue(element)) return false;
  }
  return true;
}

PeerKey Alias(std::string name, std::string key) {
  PeerKey peer;
  peer.name = std::move(name);
  peer.kind = PeerKeyKind::kAlias;
  peer.key = std::move(key);
  return peer;
}

PeerKey Required(std::string name, std::string accepted, Predicate accepts, std::string note) {
  PeerKey peer;
  peer.name = std::move(name);
  peer.kind = PeerKeyKind::kRequired;
  peer.accepted = std::move(accepted);
  peer.accepts = std::move(accepts);
  peer.note = std::move(note);
  return peer;
}

PeerKey NoEffect(std::string name, std::string default_text, Predicate is_default,
                 std::string note) {
  PeerKey peer = Required(std::move(name), std::move(default_text), std::move(is_default),
                          std::move(note));
  peer.kind = PeerKeyKind::kNoEffect;
  return peer;
}

PeerKey Record(std::string name, std::string note) {
  PeerKey peer;
  peer.name = std::move(name);
  peer.kind = PeerKeyKind::kRecord;
  peer.note = std::move(note);
  return peer;
}

std::vector<PeerKey> BuildTable() {
  const std::string kCpuOnly = "this build trains on the CPU only (see device)";
  const std::string kNoWandb = "there is no W&B logging here; metrics go to Prometheus and the "
                               "controller";
  std::vector<PeerKey> t;
  // ---- Renamed keys ----
  t.push_back(Alias("hook_name", "hook_point"));
  t.push_back(Alias("hook_head_index", "hook_point_head_index"));
  t.push_back(Alias("training_tokens", "total_training_tokens"));
  t.push_back(Alias("train_batch_size_tokens", "train_batch_size"));
  t.push_back(Alias("store_batch_size_prompts", "store_batch_size"));
  t.push_back(Alias("model_from_pretrained_kwargs", "processing"));
  t.back().kind = PeerKeyKind::kProcessing;
  // ---- The sae: block (sae.<key> is <key> for every run.yaml key) ----
  t.push_back(Alias("sae.aux_loss_coefficient", "aux_k_coefficient"));
  t.push_back(Required("sae.lp_norm", "1", Number(1),
                       "the L1 penalty is the 1-norm of the feature activations"));
  t.push_back(Record("sae.reshape_activations",
                     "none and hook_z both train on what hook_point gives: attn.hook_z without "
                     "hook_point_head_index is already flattened over heads"));
  t.push_back(Record("sae.rescale_acts_by_decoder_norm",
                     "decoder rows are kept at unit norm, so rescaling by their norms changes "
                     "nothing"));
  t.push_back(Record("sae.use_sparse_activations", "a memory layout choice of PyTorch"));
  t.push_back(Required("sae.use_matryoshka_aux_loss", "false", Boolean(false),
                       "matryoshka_batchtopk's AuxK loss reconstructs the whole SAE's error "
                       "(SAELens's default); the per-level variant is not implemented"));
  t.push_back(Record("sae.metadata", "SAELens's record of where an SAE came from; exports "
                                     "write their own"));
  // ---- The logger: block ----
  for (const char* key : {"log_to_wandb", "wandb_project", "run_name", "wandb_entity",
                          "wandb_log_frequency", "eval_every_n_wandb_logs"}) {
    t.push_back(Alias(absl::StrCat("logger.", key), key));
  }
  for (const char* key : {"logger.wandb_id", "logger.log_activations_store_to_wandb",
                          "logger.log_optimizer_state_to_wandb", "logger.log_weights_to_wandb"}) {
    t.push_back(Record(key, kNoWandb));
  }
  // ---- Keys SAELens has and this service implements in one form ----
  t.push_back(Required("model_class_name", "HookedTransformer", Text({"HookedTransformer"}),
                       "only GPT-2 HookedTransformer models run"));
  t.push_back(Required("use_chat_formatting", "false", Boolean(false),
                       "datasets are read as text or tokens, without chat templates"));
  t.push_back(Required("seqpos_slice", "[null]", IsWholeSlice,
                       "every position of a context is trained on"));
  t.push_back(Required("disable_concat_sequences", "false", Boolean(false),
                       "documents are concatenated into contexts (docs/definitions.md)"));
  t.push_back(Required("sequence_separator_token", "bos", Text({"bos"}),
                       "documents are separated by BOS, as prepend_bos says"));
  t.push_back(Required("activations_mixing_fraction", "0.5", Number(0.5),
                       "the mixing buffer keeps half its activations and refreshes the other "
                       "half (n_batches_in_buffer)"));
  t.push_back(Required("exclude_special_tokens", "false", NullOr([](const YAML::Node& v) {
                         return Boolean(false)(v) || IsEmpty(v);
                       }),
                       "activations at special tokens are trained on like any other"));
  t.push_back(Required("llm_device", "null or cpu", NullOr(Text({"cpu"})), kCpuOnly));
  t.push_back(Required("act_store_device", "null, cpu or with_model",
                       NullOr(Text({"cpu", "with_model"})), kCpuOnly));
  t.push_back(Required("autocast", "false", Boolean(false),
                       "the SAE trains in float32 (see dtype)"));
  t.push_back(Required("autocast_lm", "false", Boolean(false),
                       "the model runs in float32 during training"));
  t.push_back(Required("model_kwargs", "{}", IsEmpty,
                       "the forward takes no extra arguments"));
  t.push_back(Required("resume_from_checkpoint", "null", IsNullValue,
                       "resume with saectl train --resume DIR (a cluster run resumes by itself)"));
  // ---- Keys with no effect here ----
  t.push_back(NoEffect("streaming", "true", Boolean(true),
                       "datasets are local files, read as they are consumed"));
  t.push_back(NoEffect("dataset_trust_remote_code", "true", Boolean(true),
                       "datasets are local files; no code is downloaded"));
  t.push_back(NoEffect("prefetch_llm_batches", "false", Boolean(false),
                       "activations are always made ahead of training (activation servers)"));
  for (const char* key : {"compile_llm", "compile_sae"}) {
    t.push_back(NoEffect(key, "false", Boolean(false), "there is no torch.compile here"));
  }
  for (const char* key : {"llm_compilation_mode", "sae_compilation_mode"}) {
    t.push_back(NoEffect(key, "null", IsNullValue, "there is no torch.compile here"));
  }
  t.push_back(NoEffect("output_path", "output", Text({"output"}),
                       "saectl train --output and saectl export choose where SAEs go"));
  t.push_back(NoEffect("save_final_checkpoint", "false", Boolean(false),
                       "the final SAE and its training state are always written"));
  t.push_back(Record("hook_eval", "deprecated and unused in SAELens too"));
  t.push_back(Record("verbose", "saectl prints what it prints"));
  t.push_back(Record("sae_lens_version", "the SAELens version that wrote the config"));
  t.push_back(Record("sae_lens_training_version", "the SAELens version that wrote the config"));
  return t;
}

}  // namespace

bool IsPeerBlock(absl::string_view name) { return name == "sae" || name == "logger"; }

const std::vector<PeerKey>& PeerKeys() {
  static const std::vector<PeerKey>* const table = new std::vector<PeerKey>(BuildTable());
  return *table;
}

std::optional<PeerKey> FindPeerKey(absl::string_view name) {
  for (const PeerKey& peer : PeerKeys()) {
    if (peer.name == name) return peer;
  }
  constexpr absl::string_view kSaeBlock = "sae.";
  if (name.substr(0, kSaeBlock.size()) == kSaeBlock) {
    absl::string_view key = name.substr(kSaeBlock.size());
    if (FindField(key) != nullptr) return Alias(std::string(name), std::string(key));
  }
  return std::nullopt;
}

absl::StatusOr<Processing> ProcessingFromKwargs(const YAML::Node& kwargs) {
  if (IsNullValue(kwargs)) return Processing::kTransformerLens;
  if (!kwargs.IsMap()) return absl::InvalidArgumentError("expected a mapping such as {}");
  // TransformerLens's from_pretrained defaults: every flag true.
  const char* const kFlags[] = {"fold_ln", "center_writing_weights", "center_unembed",
                                "fold_value_biases"};
  std::vector<std::string> on, off;
  for (const auto& entry : kwargs) {
    const std::string name = entry.first.Scalar();
    bool known = false;
    for (const char* flag : kFlags) known = known || name == flag;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name, "' is not supported; allowed: fold_ln, center_writing_weights, "
          "center_unembed and fold_value_biases"));
    }
    if (!Boolean(true)(entry.second) && !Boolean(false)(entry.second)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " must be true or false"));
    }
  }
  for (const char* flag : kFlags) {
    (IsNullValue(kwargs[flag]) || Boolean(true)(kwargs[flag]) ? on : off).push_back(flag);
  }
  if (off.empty()) return Processing::kTransformerLens;
  if (on.empty()) return Processing::kNone;
  if (off.size() == 1 && off[0] == std::string("center_writing_weights")) {
    return Processing::kTransformerLensUncentered;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      absl::StrJoin(off, ", "), " false with ", absl::StrJoin(on, ", "),
      " true is not implemented: write {} for TransformerLens's weight processing (processing: "
      "transformer_lens), {center_writing_weights: false} (SAELens's default; processing: "
      "transformer_lens_uncentered) or all four false (processing: none)"));
}

std::string ShortYaml(const YAML::Node& value) {
  YAML::Emitter out;
  out.SetMapFormat(YAML::Flow);
  out.SetSeqFormat(YAML::Flow);
  out << value;
  return out.c_str();
}

}  // namespace sae::config::internal
