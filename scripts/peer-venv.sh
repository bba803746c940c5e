#!/usr/bin/env bash
# Creates (once) the virtual environment of the real peers that comparison tests and benchmarks
# run against: sae-lens, transformer-lens, transformers, tiktoken and safetensors with their
# torch 2.x, from PyPI, pinned in scripts/peer-requirements.txt. The product never uses it; it
# keeps linking Debian's LibTorch. About 6 GB (torch's wheels bring CUDA libraries even on a
# CPU machine) and 3-5 minutes the first time; a second run checks a stamp and takes a second.
#
#   bash scripts/peer-venv.sh          prints the interpreter's path on its last line
#
# Location: $SAE_PEER_VENV, default ~/.cache/sae-service/peer-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
VENV="${SAE_PEER_VENV:-$CACHE/peer-venv}"
REQUIREMENTS="scripts/peer-requirements.txt"
STAMP="$VENV/.sae-requirements.sha256"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "peer-venv: up to date in $VENV" >&2
  echo "$VENV/bin/python"
  exit 0
fi

# Debian's interpreter (the one the system packages target); venv needs python3-venv.
PY=/usr/bin/python3
if ! "$PY" -c "import ensurepip" >/dev/null 2>&1; then
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
echo "peer-venv: installing the pinned peers into $VENV (large: torch with its CUDA wheels)" >&2
mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
"$VENV/bin/python" -c "import torch, sae_lens, transformer_lens, transformers, tiktoken, safetensors" >&2
echo "$want" > "$STAMP"
echo "peer-venv: ready" >&2
echo "$VENV/bin/python"
