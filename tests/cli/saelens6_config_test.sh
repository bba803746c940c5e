#!/usr/bin/env bash
# run.yaml in SAELens 6's spelling (docs/config.md, "SAELens 6 spelling"): examples/saelens6-topk.yaml
# trains a few steps with saectl train; a key written both ways with different values, device:
# cuda and dtype: float16 each exit 2 with one line naming the key and its line.
set -euo pipefail
SAECTL="$1"
SOURCE_DIR="$2"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
CORPUS="$CACHE/corpus/fortunes.jsonl"
[ -s "$CORPUS" ] || { echo "missing $CORPUS: run scripts/fetch-assets.sh"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$SAECTL" model init --preset gpt2-tiny --seed 1 --out "$WORK/model" >/dev/null

# The example, shrunk to the tiny model with --set in both spellings.
"$SAECTL" train "$SOURCE_DIR/examples/saelens6-topk.yaml" --output "$WORK/out" \
  --set model_path="$WORK/model" --set dataset_path="$CORPUS" \
  --set hook_name=blocks.1.hook_resid_pre --set context_size=32 \
  --set sae.d_in=64 --set sae.d_sae=256 --set sae.k=8 \
  --set training_tokens=2560 --set train_batch_size_tokens=256 \
  --set store_batch_size_prompts=8 --set n_batches_in_buffer=8 \
  --set n_checkpoints=0 --set n_eval_batches=0 --set logger.wandb_log_frequency=1 \
  > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "saectl train of the SAELens 6 example failed"; }
grep -q "trained 10 steps, 2560 tokens" "$WORK/train.log" || { cat "$WORK/train.log"; fail "wrong step/token count"; }
"$SAECTL" sae info "$WORK/out/final" -o json > "$WORK/info.json"
grep -q '"architecture": "topk"' "$WORK/info.json" || { cat "$WORK/info.json"; fail "sae info architecture"; }
grep -q '"k": 8' "$WORK/info.json" || { cat "$WORK/info.json"; fail "sae info k"; }

# expect_refusal FILE PATTERN: saectl train exits 2 with a message matching PATTERN.
expect_refusal() {
  set +e
  "$SAECTL" train "$1" --output "$WORK/refused" 2> "$WORK/err"
  local code=$?
  set -e
  [ "$code" = 2 ] || { cat "$WORK/err"; fail "$1 exited $code, expected 2"; }
  grep -q -- "$2" "$WORK/err" || { cat "$WORK/err"; fail "$1: message does not match '$2'"; }
  [ "$(wc -l < "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "$1: more than one line"; }
}

printf 'model_path: %s\ndataset_path: %s\nk: 64\nsae:\n  architecture: topk\n  k: 32\n' \
  "$WORK/model" "$CORPUS" > "$WORK/both.yaml"
expect_refusal "$WORK/both.yaml" "both.yaml:6: sae.k: 32 contradicts k: 64 on line 3"

printf 'model_path: %s\ndataset_path: %s\ndevice: cuda\n' "$WORK/model" "$CORPUS" > "$WORK/cuda.yaml"
expect_refusal "$WORK/cuda.yaml" "cuda.yaml:3: device: cuda is not available: this build trains on the CPU only"

printf 'model_path: %s\ndataset_path: %s\ndtype: float16\n' "$WORK/model" "$CORPUS" > "$WORK/half.yaml"
expect_refusal "$WORK/half.yaml" "half.yaml:3: dtype: float16 is not supported"

# The same refusal from submit, before any controller is contacted.
set +e
"$SAECTL" submit "$WORK/cuda.yaml" --dry-run > /dev/null 2> "$WORK/err"
code=$?
set -e
[ "$code" = 2 ] || { cat "$WORK/err"; fail "submit --dry-run of device: cuda exited $code"; }
echo "PASS"
