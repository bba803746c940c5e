#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs every test (ctest), with output on failure.
# Usage: scripts/test.sh [extra ctest arguments, e.g. -R Safetensors]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# The real peers (SAELens, TransformerLens, transformers, tiktoken) for the tests labelled "peer".
bash scripts/peer-venv.sh >/dev/null
# kubectl (kustomize) and the Kubernetes schemas for the offline checks of deploy/kubernetes.
bash scripts/deploy-tools.sh >/dev/null

BUILD_DIR="${SAE_BUILD_DIR:-build}"
JOBS="${SAE_JOBS:-$(nproc)}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAE_BUILD_TESTS=ON \
  -DSAE_BUILD_BENCHMARKS=ON
cmake --build "$BUILD_DIR" -j "$JOBS"

cd "$BUILD_DIR"
# Tests start servers on loopback and spawn processes; two at a time suits a 2-core machine.
ctest --output-on-failure --timeout 900 -j "${SAE_TEST_JOBS:-2}" "$@"
