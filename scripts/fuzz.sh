#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, with clang, ASan and UBSan, in build-fuzz/) and runs each
# for the given time, one after the other, then prints executions and crashes per target.
#
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...] [--merge]
#   targets: names of fuzz/corpus/ folders (safetensors run_config ...); default all.
#   --merge: afterwards, add the inputs that reached new code to fuzz/corpus/<target>/
#            (libFuzzer -merge=1, which keeps only inputs that add coverage).
# Environment: SAE_FUZZ_BUILD_DIR (build-fuzz), SAE_FUZZ_JOBS (2), SAE_FUZZ_WORK (the folder of
# each run's corpus, log and crash inputs: $SAE_FUZZ_BUILD_DIR/fuzz-runs).
# A crash input is left in $SAE_FUZZ_WORK/<target>/crash-* (or leak-*, timeout-*, oom-*); copy
# it to fuzz/regressions/<target>/ once fixed, so the corpus replay (ctest -L fuzz) keeps it.
# docs/reliability.md describes the targets and the figures of past runs.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=60
MERGE=0
TARGETS=()
for arg in "$@"; do
  case "$arg" in
    --merge) MERGE=1 ;;
    ''|*[!0-9]*) TARGETS+=("$arg") ;;
    *) SECONDS_PER_TARGET="$arg" ;;
  esac
done
if [ ${#TARGETS[@]} -eq 0 ]; then
  for dir in fuzz/corpus/*/; do TARGETS+=("$(basename "$dir")"); done
fi

if ! command -v clang++ >/dev/null 2>&1; then
  echo "fuzz.sh: clang++ is missing (apt-get install clang libclang-rt-14-dev)" >&2
  exit 2
fi
BUILD_DIR="${SAE_FUZZ_BUILD_DIR:-build-fuzz}"
WORK="${SAE_FUZZ_WORK:-$BUILD_DIR/fuzz-runs}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSAE_FUZZ=ON \
    -DSAE_BUILD_TESTS=OFF -DSAE_BUILD_BENCHMARKS=OFF >/dev/null
fi
BINARIES=()
for target in "${TARGETS[@]}"; do BINARIES+=("fuzz_$target"); done
cmake --build "$BUILD_DIR" -j "${SAE_FUZZ_JOBS:-2}" --target "${BINARIES[@]}"

# LibTorch and the other system libraries are not instrumented; LeakSanitizer stays on (a leak
# per input would grow without bound), with libtorch's one-time allocations at start-up
# suppressed (tests/sanitizers/lsan.supp).
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0}"
# Targets that read files write them to a scratch folder under $TMPDIR: on tmpfs, the fsyncs of
# RocksDB and of atomic file writes cost nothing.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

mkdir -p "$WORK"
printf '%-20s %8s %12s %10s %8s %8s\n' target seconds executions exec/s crashes corpus > "$WORK/summary"
status=0
for target in "${TARGETS[@]}"; do
  run="$WORK/$target"
  mkdir -p "$run/corpus"
  seeds=("fuzz/corpus/$target")
  [ -d "fuzz/regressions/$target" ] && seeds+=("fuzz/regressions/$target")
  echo "fuzz.sh: $target for ${SECONDS_PER_TARGET}s (log: $run/log)"
  started=$SECONDS
  set +e
  "$BUILD_DIR/fuzz/fuzz_$target" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$run/" \
    "$run/corpus" "${seeds[@]}" > "$run/log" 2>&1
  code=$?
  set -e
  elapsed=$((SECONDS - started))
  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$run/log" | grep -o '[0-9]*$' || echo 0)
  rate=$(( ${executions:-0} / (elapsed > 0 ? elapsed : 1) ))
  crashes=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  corpus=$(find "$run/corpus" -type f | wc -l)
  printf '%-20s %8s %12s %10s %8s %8s\n' "$target" "$elapsed" "${executions:-0}" "${rate:-0}" \
    "$crashes" "$corpus" >> "$WORK/summary"
  if [ "$code" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    echo "fuzz.sh: $target failed (exit $code); the end of $run/log:"
    tail -n 30 "$run/log"
  fi
  if [ "$MERGE" -eq 1 ]; then
    "$BUILD_DIR/fuzz/fuzz_$target" -merge=1 "fuzz/corpus/$target" "$run/corpus" > "$run/merge.log" 2>&1 ||
      echo "fuzz.sh: merging $target's corpus failed: $run/merge.log"
  fi
done
cat "$WORK/summary"
exit $status
