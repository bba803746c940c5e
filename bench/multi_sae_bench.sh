#!/usr/bin/env bash
# Many SAEs from one activation stream: four SAEs of an l1 sweep trained by one `saectl train`
# (one GPT-2 forward per batch feeds all four) beside four separate `saectl train` runs of the
# same configs, same tokens, same machine, measured one after the other in this script. Prints
# each side's total wall time and SAE-tokens/s (tokens trained summed over the four SAEs per
# second of wall time) and their ratio. Not a test.
#   bench/multi_sae_bench.sh [BUILD_DIR] [TOKENS] [MODEL_DIR] [EXPANSION]
# With SAE_BENCH_CLUSTER=1 both sides run on a local cluster instead (`saectl cluster up` with one
# activation server and one trainer, one LibTorch thread each, started once for both sides): one
# submitted run with the sweep beside four submitted runs, each timed from `saectl submit -f` to
# its end. SAE_BENCH_HOOK picks the hook (default blocks.2.hook_resid_pre).
# MODEL_DIR defaults to the quickstart's trained gpt2-mini in the cache when present, else a random gpt2-mini
# (`saectl model init --preset gpt2-mini`); `saectl model init --preset gpt2-small` gives the
# shape of the seed's recipe, where the forward is most of a run's cost.
set -euo pipefail
BUILD="${1:-build}"
TOKENS="${2:-409600}"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
MODEL="${3:-$CACHE/models/gpt2-mini-fortunes-600000-v2}"
EXPANSION="${4:-4}"
HOOK="${SAE_BENCH_HOOK:-blocks.2.hook_resid_pre}"  # the hook all SAEs read
SAECTL="$BUILD/bin/saectl"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "${3:-}" ] && [ ! -f "$MODEL/model.safetensors" ]; then
  echo "multi_sae_bench.sh: $MODEL has no model.safetensors (make one with" \
       "'saectl model init --preset gpt2-small --out $MODEL')" >&2
  exit 2
fi
if [ ! -f "$MODEL/model.safetensors" ]; then
  MODEL="$WORK/gpt2-mini"
  "$SAECTL" model init --preset gpt2-mini --seed 0 --out "$MODEL" >/dev/null
fi
COEFFICIENTS=(4e-5 8e-5 1.6e-4 3.2e-4)
cat > "$WORK/base.yaml" <<YAML
model_path: $MODEL
dataset_path: $CACHE/corpus/fortunes.jsonl
hook_point: $HOOK
context_size: 128
expansion_factor: $EXPANSION
train_batch_size: 4096
total_training_tokens: $TOKENS
n_batches_in_buffer: 8
store_batch_size: 32
lr: 0.0004
lr_warm_up_steps: 10
b_dec_init_method: mean
n_eval_batches: 0
wandb_log_frequency: 1000
YAML
now() { date +%s.%N; }

CLUSTER="${SAE_BENCH_CLUSTER:-0}"
WHERE="saectl train"
if [ "$CLUSTER" = 1 ]; then
  WHERE="cluster run"
  printf 'activation_servers: 1\ntrainers: 1\n' >> "$WORK/base.yaml"
  unset SAE_AUTH_TOKEN
  "$SAECTL" cluster up --data-dir "$WORK/cluster" --activation-servers 1 --trainers 1 --port 0 \
    --threads 1 > "$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
  trap '"$SAECTL" cluster down --data-dir "$WORK/cluster" >/dev/null 2>&1; rm -rf "$WORK"' EXIT
  export SAECTL_SERVER
  SAECTL_SERVER=$(sed -n 's/.*SAECTL_SERVER=\([0-9.:]*\).*/\1/p' "$WORK/up.log")
  [ -n "$SAECTL_SERVER" ] || SAECTL_SERVER=127.0.0.1:7070
fi
# One SAE or the sweep: `saectl train`, or a submitted run followed to its end.
train() {  # train CONFIG NAME [--set ...]
  local config="$1" name="$2"
  shift 2
  if [ "$CLUSTER" = 1 ]; then
    "$SAECTL" submit "$config" --name "$name" -f "$@" > "$WORK/$name.log" 2>&1
  else
    "$SAECTL" train "$config" --output "$WORK/$name" "$@" > "$WORK/$name.log" 2>&1
  fi
}

echo "model $MODEL, hook $HOOK, expansion $EXPANSION, batch 4096, $TOKENS tokens per SAE ($WHERE)"
echo "l1 sweep: ${COEFFICIENTS[*]}"
start=$(now)
for i in "${!COEFFICIENTS[@]}"; do
  train "$WORK/base.yaml" "alone$i" --set l1_coefficient="${COEFFICIENTS[$i]}" ||
    { cat "$WORK/alone$i.log"; exit 1; }
done
separate=$(echo "$(now) - $start" | bc -l)

{ cat "$WORK/base.yaml"; printf 'sweep:\n  l1_coefficient: [%s, %s, %s, %s]\n' "${COEFFICIENTS[@]}"; } > "$WORK/sweep.yaml"
start=$(now)
train "$WORK/sweep.yaml" sweep || { cat "$WORK/sweep.log"; exit 1; }
together=$(echo "$(now) - $start" | bc -l)
if [ "$CLUSTER" != 1 ]; then
  grep -q "trained" "$WORK/sweep.log" || { cat "$WORK/sweep.log"; exit 1; }
fi

sae_tokens=$((4 * TOKENS))
printf '%-38s %10s %16s\n' "" "wall s" "SAE-tokens/s"
printf '%-38s %10.1f %16.0f\n' "four separate ${WHERE}s" "$separate" \
  "$(echo "$sae_tokens / $separate" | bc -l)"
printf '%-38s %10.1f %16.0f\n' "one $WHERE, sweep of four" "$together" \
  "$(echo "$sae_tokens / $together" | bc -l)"
printf 'ratio (one stream / four runs): %.2fx\n' "$(echo "$separate / $together" | bc -l)"
echo "(the machine may be shared: both sides ran one after the other in this script)"
