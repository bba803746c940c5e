#!/usr/bin/env bash
# saectl train end to end on a gpt2-tiny model and the fortunes corpus (real GPT-2 tokenizer):
# runs to completion, writes every checkpoint and the final SAE; `saectl sae info` reads it; a
# bad run.yaml exits 2 naming the key and the line; `model activations --text` tokenizes.
set -euo pipefail
SAECTL="$1"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
CORPUS="$CACHE/corpus/fortunes.jsonl"
[ -s "$CORPUS" ] || { echo "missing $CORPUS: run scripts/fetch-assets.sh"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$SAECTL" model init --preset gpt2-tiny --seed 1 --out "$WORK/model" >/dev/null
cat > "$WORK/run.yaml" <<YAML
model_path: $WORK/model
dataset_path: $CORPUS
hook_point: blocks.1.hook_resid_pre
context_size: 32
expansion_factor: 4
train_batch_size: 256
total_training_tokens: 20480
n_batches_in_buffer: 16
store_batch_size: 8
lr: 0.001
lr_warm_up_steps: 10
l1_coefficient: 0.001
use_ghost_grads: true
n_checkpoints: 4
wandb_log_frequency: 20
YAML
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/out" > "$WORK/train.log" 2>&1 || { cat "$WORK/train.log"; fail "saectl train failed"; }
grep -q "trained 80 steps, 20480 tokens" "$WORK/train.log" || { cat "$WORK/train.log"; fail "wrong step/token count"; }
for step in 20 40 60 80; do
  d="$WORK/out/checkpoints/$(printf 'step_%08d' $step)"
  [ -f "$d/state.json" ] && [ -f "$d/sae/sae_weights.safetensors" ] || fail "missing checkpoint $d"
done
for f in cfg.json sae_weights.safetensors sparsity.safetensors; do
  [ -f "$WORK/out/final/$f" ] || fail "final SAE lacks $f"
done
"$SAECTL" sae info "$WORK/out/final" -o json > "$WORK/info.json"
grep -q '"d_sae": 256' "$WORK/info.json" || { cat "$WORK/info.json"; fail "sae info shape"; }
grep -q '"hook_name": "blocks.1.hook_resid_pre"' "$WORK/info.json" || fail "sae info hook"

# Resume from the halfway checkpoint: the run finishes where it would have.
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/out2" --resume "$WORK/out/checkpoints/step_00000040" > "$WORK/resume.log" 2>&1 || { cat "$WORK/resume.log"; fail "resume failed"; }
grep -q "trained 80 steps, 20480 tokens" "$WORK/resume.log" || { cat "$WORK/resume.log"; fail "resume step count"; }

# A bad run.yaml: exit 2, one line naming the key and its line.
printf 'model_path: %s\nhook_point: blocks.1.hook_resid_pre\nlearning_rate: 0.1\n' "$WORK/model" > "$WORK/bad.yaml"
set +e
"$SAECTL" train "$WORK/bad.yaml" --output "$WORK/bad" 2> "$WORK/bad.err"
code=$?
set -e
[ "$code" = 2 ] || { cat "$WORK/bad.err"; fail "bad run.yaml exited $code, expected 2"; }
grep -q "bad.yaml:3" "$WORK/bad.err" && grep -q "learning_rate" "$WORK/bad.err" || { cat "$WORK/bad.err"; fail "error does not name the key and line"; }

# model activations --text goes through the real tokenizer.
"$SAECTL" model activations --model "$WORK/model" --hook blocks.0.hook_resid_post --text "Hello world" --prepend-bos --out "$WORK/acts.safetensors" > "$WORK/acts.log"
grep -q "tokens: 50256,15496,995" "$WORK/acts.log" || { cat "$WORK/acts.log"; fail "--text tokens"; }
grep -q "\[1, 3, 64\]" "$WORK/acts.log" || { cat "$WORK/acts.log"; fail "activation shape"; }
# Ctrl-C (SIGINT) mid-run: a checkpoint is written, the message says how to resume, exit 3.
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/int" --set total_training_tokens=2048000 \
  --set n_checkpoints=0 --set wandb_log_frequency=1 > "$WORK/int.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do grep -q "^step 3/" "$WORK/int.log" && break; sleep 0.1; done
kill -INT "$pid"
set +e
wait "$pid"
code=$?
set -e
[ "$code" = 3 ] || { cat "$WORK/int.log"; fail "interrupted train exited $code, expected 3"; }
grep -q "resume with: saectl train" "$WORK/int.log" || { cat "$WORK/int.log"; fail "no resume hint"; }
ls "$WORK/int/checkpoints"/step_*/state.json >/dev/null || fail "no checkpoint after Ctrl-C"

# from_pretrained_path starts from an exported SAE.
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/pre" --set from_pretrained_path="$WORK/out/final" \
  --set total_training_tokens=2560 --set n_checkpoints=0 --set wandb_log_frequency=1 > "$WORK/pre.log" 2>&1 || { cat "$WORK/pre.log"; fail "from_pretrained_path run failed"; }
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/fresh" \
  --set total_training_tokens=2560 --set n_checkpoints=0 --set wandb_log_frequency=1 > "$WORK/fresh.log" 2>&1
mse_of() { grep "^step 1/" "$1" | sed -E 's/.* mse ([^ ]+) .*/\1/'; }
/usr/bin/python3 -c "import sys; p, f = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if p < 0.8 * f else 1)" \
  "$(mse_of "$WORK/pre.log")" "$(mse_of "$WORK/fresh.log")" || { grep "^step 1/" "$WORK/pre.log" "$WORK/fresh.log"; fail "from_pretrained_path did not start from the trained SAE"; }
echo "saectl train end to end: OK"
