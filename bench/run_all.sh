#!/usr/bin/env bash
# Every benchmark of docs/performance.md's table, one after the other in one run, with the
# machine's GEMM rate measured at the start and at the end, and the load average before and after
# each. Each benchmark prints its own reference and ratio; this script keeps their output in one
# log folder and prints a summary (wall time and load of each). Not a test.
#
#   bench/run_all.sh [BUILD_DIR] [--force] [--quick]
#     --force  run although the 1-minute load average is above 0.5 (the figures are then not
#              from a quiet machine: the summary says so)
#     --quick  one repetition where a benchmark takes a count (a smoke run of the script)
# Output: BUILD_DIR/bench-logs/<UTC time>/ (one .log per benchmark, summary.txt).
set -uo pipefail
BUILD="build"
FORCE=0
REPS=3
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --quick) REPS=1 ;;
    *) BUILD="$arg" ;;
  esac
done
cd "$(dirname "$0")/.."
B="$BUILD/bench"
[ -x "$B/gpt2_forward_bench" ] || {
  echo "run_all.sh: no benchmarks in $B: configure with -DSAE_BUILD_BENCHMARKS=ON and build" >&2
  exit 2
}
load() { cut -d' ' -f1 /proc/loadavg; }
if [ "$FORCE" != 1 ] && awk -v l="$(load)" 'BEGIN { exit !(l > 0.5) }'; then
  echo "run_all.sh: load average $(load) > 0.5: the machine is not quiet (stop other work, or" \
       "pass --force and say so beside the figures)" >&2
  exit 3
fi
OUT="$BUILD/bench-logs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
{
  echo "bench/run_all.sh at $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null)"
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
} | tee "$SUMMARY"

# The GEMM rate LibTorch reaches here (the first line gpt2_forward_bench prints), as the
# yardstick of the machine at the start and the end of the run.
# (The output is read whole: grep -m1 on the pipe would end the benchmark with SIGPIPE.)
gemm() {
  local out
  out=$("$B/gpt2_forward_bench" 1 2>/dev/null)
  grep -m1 'LibTorch GEMM' <<<"$out" || echo "GEMM: not measured"
}
echo "start: $(gemm)" | tee -a "$SUMMARY"

failures=0
run() {  # run NAME COMMAND...
  local name="$1"
  shift
  local before start rc
  before=$(load)
  start=$(date +%s)
  "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '%-28s %6ss  load %s -> %s  exit %s\n' "$name" "$(($(date +%s) - start))" "$before" \
    "$(load)" "$rc" | tee -a "$SUMMARY"
  [ "$rc" = 0 ] || failures=$((failures + 1))
}

run tokenizer_bench "$B/tokenizer_bench"
run data_bench "$B/data_bench"
run gpt2_forward_bench "$B/gpt2_forward_bench" "$REPS"
run gpt2_train_bench "$B/gpt2_train_bench" "$REPS" 4 128 4 128 16
run stream_bench "$B/stream_bench"
run sae_step_bench "$B/sae_step_bench" "$REPS"
run sae_step_bench_ghost "$B/sae_step_bench" --ghost 1
run sae_step_bench_others "$B/sae_step_bench" --others 1
run sae_architectures_bench "$B/sae_architectures_bench" "$REPS"
run eval_bench "$B/eval_bench" "$REPS" gpt2-small
run features_bench "$B/features_bench" "$REPS"
run progress_history_bench "$B/progress_history_bench"
[ -x "$B/metrics_bench" ] && run metrics_bench "$B/metrics_bench"
run multi_sae_bench bash bench/multi_sae_bench.sh "$BUILD"
# The same sweep on a GPT-2-small-shaped model at layer 8 (random weights, made once in the cache).
SMALL="${SAE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sae-service}/models/gpt2-small-random"
[ -f "$SMALL/model.safetensors" ] ||
  "$BUILD/bin/saectl" model init --preset gpt2-small --seed 0 --out "$SMALL" >/dev/null
run multi_sae_bench_gpt2_small env SAE_BENCH_HOOK=blocks.8.hook_resid_pre \
  bash bench/multi_sae_bench.sh "$BUILD" 40960 "$SMALL" 4
run pipeline_vs_saelens bash bench/pipeline_vs_saelens.sh "$BUILD"

echo "end: $(gemm)" | tee -a "$SUMMARY"
[ "$FORCE" = 1 ] && echo "(--force: not a quiet machine; see the loads above)" | tee -a "$SUMMARY"
echo "logs: $OUT ($failures failed)" | tee -a "$SUMMARY"
[ "$failures" = 0 ]
