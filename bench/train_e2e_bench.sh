#!/usr/bin/env bash
# End-to-end `saectl train` throughput on a GPT-2-small-shaped model with random weights, hook
# blocks.2.hook_resid_pre (the seed's recipe), beside the model forward alone and the SAE step
# alone (from gpt2_forward_bench and sae_step_bench figures in the same run is too slow; this
# script reports tokens/s of the whole pipeline and its two halves measured by saectl itself).
#   bench/train_e2e_bench.sh [BUILD_DIR] [TOKENS]
set -euo pipefail
BUILD="${1:-build}"
TOKENS="${2:-196608}"
SAECTL="$BUILD/bin/saectl"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
MODEL="$CACHE/models/gpt2-small-random"
[ -f "$MODEL/model.safetensors" ] || "$SAECTL" model init --preset gpt2-small --seed 0 --out "$MODEL" >/dev/null
cat > "$WORK/run.yaml" <<YAML
model_path: $MODEL
dataset_path: $CACHE/corpus/fortunes.jsonl
hook_point: blocks.2.hook_resid_pre
context_size: 128
expansion_factor: 8
train_batch_size: 4096
total_training_tokens: $TOKENS
n_batches_in_buffer: 8
store_batch_size: 32
lr: 0.0004
l1_coefficient: 0.00008
lr_warm_up_steps: 10
b_dec_init_method: mean
wandb_log_frequency: 1000
YAML
echo "saectl train, GPT-2 small shape (random weights), blocks.2.hook_resid_pre, d_sae 6144, batch 4096, $TOKENS tokens"
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/out" 2>/dev/null | grep -E "trained|L0"
echo "activation generation alone (saectl cache, same config):"
"$SAECTL" cache "$WORK/run.yaml" --out "$WORK/cache" --rows "$TOKENS" 2>/dev/null | head -1
echo "training from the cache (SAE steps and file reads only):"
"$SAECTL" train "$WORK/run.yaml" --output "$WORK/out2" --set use_cached_activations=true \
  --set cached_activations_path="$WORK/cache" 2>/dev/null | grep -E "trained"
