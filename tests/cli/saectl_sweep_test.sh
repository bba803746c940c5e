#!/usr/bin/env bash
# saectl train with sweep: and hook_points: on a gpt2-tiny model (docs/config.md, "Many SAEs in
# one run"): one run trains every SAE into OUT/saes/<name>/final, log lines name the SAE, each
# SAE equals (within 1e-5) the SAE of a separate saectl train of its config, --resume of a step
# folder finishes every SAE, and saectl submit accepts the sweep (the cluster trains it).
set -euo pipefail
SAECTL="$1"
PYTHON="${2:-/usr/bin/python3}"
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
CORPUS="$CACHE/corpus/fortunes.jsonl"
[ -s "$CORPUS" ] || { echo "missing $CORPUS: run scripts/fetch-assets.sh"; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The largest difference between the parameters of two SAELens folders (numpy only).
cat > "$WORK/compare.py" <<'PY'
import json, struct, sys
import numpy as np
def load(path):
    with open(path + "/sae_weights.safetensors", "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out
x, y = load(sys.argv[1]), load(sys.argv[2])
assert sorted(x) == sorted(y), (sorted(x), sorted(y))
print(max(float(np.abs(x[k] - y[k]).max()) for k in x))
PY
same() {
  d=$("$PYTHON" "$WORK/compare.py" "$1" "$2")
  "$PYTHON" -c "import sys; sys.exit(0 if float('$d') <= 1e-5 else 1)" || fail "$1 and $2 differ by $d"
}

"$SAECTL" model init --preset gpt2-tiny --seed 1 --out "$WORK/model" >/dev/null
cat > "$WORK/base.yaml" <<YAML
model_path: $WORK/model
dataset_path: $CORPUS
context_size: 32
expansion_factor: 4
train_batch_size: 256
total_training_tokens: 5120
n_batches_in_buffer: 8
store_batch_size: 8
lr: 0.001
lr_warm_up_steps: 5
shuffle: false
n_eval_batches: 1
eval_batch_size_prompts: 4
wandb_log_frequency: 5
YAML
{ cat "$WORK/base.yaml"; printf 'hook_point: blocks.1.hook_resid_pre\nn_checkpoints: 2\nsweep:\n  l1_coefficient: [4e-4, 1e-3, 3e-3]\n'; } > "$WORK/sweep.yaml"
"$SAECTL" train "$WORK/sweep.yaml" --output "$WORK/sweep" > "$WORK/sweep.log" 2>&1 || { cat "$WORK/sweep.log"; fail "sweep run failed"; }
grep -q "training 3 SAEs from one activation stream" "$WORK/sweep.log" || { cat "$WORK/sweep.log"; fail "no SAE list"; }
grep -q "^\[blocks.1.hook_resid_pre/l1=0.001\] step 20/20" "$WORK/sweep.log" || { cat "$WORK/sweep.log"; fail "log lines do not name the SAE"; }
i=0
for l1 in 0.0004 0.001 0.003; do
  name="blocks.1.hook_resid_pre/l1=$l1"
  for f in cfg.json sae_weights.safetensors sparsity.safetensors eval_results.json; do
    [ -f "$WORK/sweep/saes/$name/final/$f" ] || fail "$name: final/$f missing"
  done
  [ -f "$WORK/sweep/checkpoints/step_00000010/saes/$name/state.json" ] || fail "$name: no checkpoint at step 10"
  "$SAECTL" train "$WORK/base.yaml" --output "$WORK/alone$i" --set hook_point=blocks.1.hook_resid_pre \
    --set l1_coefficient=$l1 > "$WORK/alone$i.log" 2>&1 || { cat "$WORK/alone$i.log"; fail "separate run $l1 failed"; }
  same "$WORK/sweep/saes/$name/final" "$WORK/alone$i/final"
  i=$((i + 1))
done

# Resume every SAE from the step-10 folder: the same SAEs come out.
"$SAECTL" train "$WORK/sweep.yaml" --output "$WORK/resumed" --resume "$WORK/sweep/checkpoints/step_00000010" > "$WORK/resumed.log" 2>&1 || { cat "$WORK/resumed.log"; fail "resume failed"; }
for l1 in 0.0004 0.001 0.003; do
  same "$WORK/sweep/saes/blocks.1.hook_resid_pre/l1=$l1/final" "$WORK/resumed/saes/blocks.1.hook_resid_pre/l1=$l1/final"
done

# Two hooks against two separate runs.
{ cat "$WORK/base.yaml"; printf 'l1_coefficient: 0.001\nhook_points: [blocks.0.hook_resid_pre, blocks.1.hook_mlp_out]\n'; } > "$WORK/hooks.yaml"
"$SAECTL" train "$WORK/hooks.yaml" --output "$WORK/hooks" > "$WORK/hooks.log" 2>&1 || { cat "$WORK/hooks.log"; fail "hooks run failed"; }
for hook in blocks.0.hook_resid_pre blocks.1.hook_mlp_out; do
  "$SAECTL" train "$WORK/base.yaml" --output "$WORK/$hook" --set hook_point=$hook --set l1_coefficient=0.001 > "$WORK/$hook.log" 2>&1 || { cat "$WORK/$hook.log"; fail "separate run $hook failed"; }
  same "$WORK/hooks/saes/$hook/final" "$WORK/$hook/final"
done

# A sweep is submitted like any run (tests/cluster/many_saes_cluster_test.cc trains one): with
# no controller to reach, submit fails on the connection (exit 1), not on the config (exit 2).
set +e
"$SAECTL" submit "$WORK/sweep.yaml" --server 127.0.0.1:1 > /dev/null 2> "$WORK/submit.err"
code=$?
set -e
[ "$code" = 1 ] || { cat "$WORK/submit.err"; fail "submit of a sweep exited $code, expected 1 (no controller)"; }
"$SAECTL" submit "$WORK/sweep.yaml" --dry-run > /dev/null 2> "$WORK/dry.err" || { cat "$WORK/dry.err"; fail "dry run"; }
grep -q "3 SAEs: blocks.1.hook_resid_pre/l1=0.0004" "$WORK/dry.err" || { cat "$WORK/dry.err"; fail "dry run does not list the SAEs"; }
grep -q "SAE blocks.1.hook_resid_pre/l1=0.003 d_in 64 d_sae 256: parameters" "$WORK/dry.err" || { cat "$WORK/dry.err"; fail "dry run has no memory estimate per SAE"; }
# A stream key in sweep: is refused, naming the key and why.
{ cat "$WORK/base.yaml"; printf 'sweep:\n  context_size: [16, 32]\n'; } > "$WORK/bad.yaml"
set +e
"$SAECTL" train "$WORK/bad.yaml" --output "$WORK/bad" 2> "$WORK/bad.err"
code=$?
set -e
[ "$code" = 2 ] || { cat "$WORK/bad.err"; fail "bad sweep exited $code"; }
grep -q "sweep.context_size: cannot be swept: it changes the activation stream" "$WORK/bad.err" || { cat "$WORK/bad.err"; fail "bad sweep message"; }
echo PASS
