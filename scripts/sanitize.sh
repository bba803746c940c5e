#!/usr/bin/env bash
# Builds the tests with a sanitizer in a build folder of its own and runs a subset with CTest.
#
# Usage: scripts/sanitize.sh asan|tsan [ctest arguments]
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer (-fsanitize=address,undefined; any UBSan
#         finding aborts the test) in build-asan/. Without ctest arguments: every test except
#         the peer comparisons and the console/deploy checks (-LE 'peer' -E '^(console|deploy)\.').
#   tsan  ThreadSanitizer in build-tsan/. Without ctest arguments: the data plane, controller,
#         worker agent, mixing buffer, activation stream and cluster tests.
# Environment:
#   SAE_SANITIZE_TARGETS  ninja targets to build (space-separated; default: all). Building all
#                         of the project instrumented takes 40-60 minutes on 2 cores; name the
#                         test binaries of the subset to run to build less.
#   SAE_SANITIZE_JOBS     parallel compile jobs (default: nproc), SAE_TEST_JOBS ctest -j (2).
#   CC/CXX                the compiler (default gcc; clang works as well).
# LibTorch, OpenBLAS, Gloo, gRPC and the other system libraries are not instrumented: their
# suppressions are in tests/sanitizers/ (why each is there is written beside it), and
# docs/reliability.md reports what past runs found.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-}"
shift || true
SUPP="$PWD/tests/sanitizers"
case "$MODE" in
  asan)
    BUILD_DIR="${SAE_SANITIZE_BUILD_DIR:-build-asan}"
    FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    DEFAULT_ARGS=(-LE peer -E '^(console|deploy)\.')
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0}"
    export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$SUPP/lsan.supp:print_suppressions=0}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$SUPP/ubsan.supp}"
    ;;
  tsan)
    BUILD_DIR="${SAE_SANITIZE_BUILD_DIR:-build-tsan}"
    FLAGS="-fsanitize=thread -fno-omit-frame-pointer"
    DEFAULT_ARGS=(-R '^(DataPlaneTest|ClusterTest|ControllerTest|ControllerServiceTest|RunStoreTest|SchedulerTest|WorkerAgentTest|MixingBufferTest|ActivationStreamTest|PrefetchQueueTest|ActivationServerTest)\.')
    export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp}"
    ;;
  *)
    echo "usage: scripts/sanitize.sh asan|tsan [ctest arguments]" >&2
    exit 2
    ;;
esac
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then ARGS=("${DEFAULT_ARGS[@]}"); fi

mkdir -p "$BUILD_DIR"
EXE_FLAGS="$FLAGS"
if [ "$MODE" = tsan ]; then
  # Debian's Abseil is not instrumented, so TSan cannot see absl::Mutex order anything; this
  # object gives every executable annotated absl::Mutex/CondVar/Notification functions (see the
  # file for how).
  # Linked through the linker flags, it is no dependency ninja knows of: when the object
  # changes, the executables are deleted so that every one is linked again with it.
  shim="$BUILD_DIR/tsan_absl_annotations.o"
  "${CXX:-g++}" -std=c++17 -O1 -g -fPIC $FLAGS -c tests/sanitizers/tsan_absl_annotations.cc \
    -o "$shim.new"
  if ! cmp -s "$shim.new" "$shim"; then
    mv "$shim.new" "$shim"
    find "$BUILD_DIR/bin" "$BUILD_DIR/tests" "$BUILD_DIR/bench" -maxdepth 1 -type f -executable \
      -delete 2>/dev/null || true
  else
    rm -f "$shim.new"
  fi
  EXE_FLAGS="$FLAGS $PWD/$shim"
fi
# Configured every time (cheap when nothing changed) so that a change of flags reaches the build.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="${CC:-gcc}" -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="$EXE_FLAGS" -DCMAKE_SHARED_LINKER_FLAGS="$FLAGS" \
  -DSAE_BUILD_TESTS=ON -DSAE_BUILD_BENCHMARKS=OFF >/dev/null
# shellcheck disable=SC2086  # a list of targets
cmake --build "$BUILD_DIR" -j "${SAE_SANITIZE_JOBS:-$(nproc)}" ${SAE_SANITIZE_TARGETS:+--target $SAE_SANITIZE_TARGETS}

cd "$BUILD_DIR"
# Tests of binaries that were not built are reported as "Not Run"; with SAE_SANITIZE_TARGETS
# name every binary the subset needs.
ctest --output-on-failure --timeout 1800 -j "${SAE_TEST_JOBS:-2}" "${ARGS[@]}"
