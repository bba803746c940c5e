#!/usr/bin/env bash
# The whole training pipeline against SAELens 6 on the CPU (issue 18): `saectl train` beside
# SAELens's LanguageModelSAETrainingRunner on one config written by SAELens's own classes, a
# GPT-2-small-shaped model with random weights (`saectl model init --preset gpt2-small`, read by
# both from its Hugging Face folder), hook blocks.2.hook_resid_pre, a TopK SAE with k 32 (so L0
# is the same on both sides), expansion 32, batch 4096 tokens, context 128, 20 steps, the same
# pre-tokenised file (fortunes.jsonl tokenised by `saectl tokenize`, rows of 128 ids), the same
# thread count, mixing buffers of the same size, no evals, checkpoints or wandb. Prints both
# sides' tokens/s and the ratio (the issue's goal: 1.5x), and each side's loss, mse and L0 per
# step; exits 1 if a side's loss did not fall. bench/reference/saelens_pipeline.py does the work
# (its docstring says what is timed); it runs in the peer virtual environment
# (scripts/peer-venv.sh). Not a test.
#
#   bench/pipeline_vs_saelens.sh [BUILD_DIR] [--short] [saelens_pipeline.py options]
#
# --short: the smoke check (2 steps of batch 1024, expansion 4; about a minute, not a figure).
# Options after it go to saelens_pipeline.py: --steps, --expansion, --threads, --arch standard
# with --l1 (the two sides' standard SAEs optimise different losses, so their L0 drift apart),
# ... The full run takes about 20 minutes on two loaded cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="${1:-build}"
shift || true
ARGS=(--threads "$(nproc)")
if [ "${1:-}" = "--short" ]; then
  shift
  ARGS+=(--steps 2 --batch 1024 --expansion 4)
fi
SAECTL="$(cd "$BUILD" && pwd)/bin/saectl"
[ -x "$SAECTL" ] || { echo "no saectl at $SAECTL: build it (ninja -C $BUILD saectl)" >&2; exit 2; }
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
CORPUS="$CACHE/corpus/fortunes.jsonl"
[ -f "$CORPUS" ] || { echo "no corpus at $CORPUS: run scripts/fetch-assets.sh" >&2; exit 2; }
PY=$(bash "$ROOT/scripts/peer-venv.sh" 2>/dev/null | tail -1)
MODEL="$CACHE/models/gpt2-small-random"
[ -f "$MODEL/model.safetensors" ] ||
  "$SAECTL" model init --preset gpt2-small --seed 0 --out "$MODEL" >/dev/null
echo "machine: $(nproc) cores, load: $(uptime | sed 's/.*load average: //')"
TQDM_DISABLE=1 PYTHONWARNINGS=ignore "$PY" "$ROOT/bench/reference/saelens_pipeline.py" \
  --saectl "$SAECTL" --model "$MODEL" --corpus "$CORPUS" "${ARGS[@]}" "$@" \
  2> >(grep -v -e "^You just passed in a" -e "^Loading weights" >&2)
echo "load after: $(uptime | sed 's/.*load average: //')"
