#!/usr/bin/env bash
# run.sh - builds the libFuzzer targets with clang, replays their seed corpora
# and regression inputs, then fuzzes each for a bounded time.
#
#   tests/fuzz/run.sh [--seconds N] [--target NAME] [--build DIR] [--jobs N] [--keep]
#
#   --seconds N    fuzz each target for N seconds after the replay (default 15; 0: replay only)
#   --target NAME  only this target (fuzz_batch or batch, ...; default all)
#   --build DIR    the clang build directory (default build-fuzz at the top of the tree)
#   --jobs N       run N targets at a time (default: the number of cores, nproc)
#   --keep         keep the scratch directory (grown corpora, artifacts) even on success
#
# Nothing in the tree changes but the build directory: the corpora grow in a
# scratch directory under $TMPDIR. Exits non-zero on any crash, leak, timeout
# or out-of-memory, and prints where the input that caused it was saved.
# Running a target for hours: tests/fuzz/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
FUZZ_DIR=$ROOT/tests/fuzz
# every fuzz_NAME.c here is a target (CMakeLists.txt builds them the same way)
TARGETS=()
for f in "$FUZZ_DIR"/fuzz_*.c; do
    f=${f##*/}
    TARGETS+=("${f%.c}")
done

SECONDS_EACH=15
ONLY=
BUILD=$ROOT/build-fuzz
KEEP=0
JOBS=$(nproc)
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) SECONDS_EACH=${2:?--seconds needs a value}; shift ;;
    --seconds=*) SECONDS_EACH=${1#*=} ;;
    --target) ONLY=${2:?--target needs a value}; shift ;;
    --target=*) ONLY=${1#*=} ;;
    --build) BUILD=${2:?--build needs a value}; shift ;;
    --build=*) BUILD=${1#*=} ;;
    --jobs) JOBS=${2:?--jobs needs a value}; shift ;;
    --jobs=*) JOBS=${1#*=} ;;
    --keep) KEEP=1 ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *) echo "fuzz/run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$SECONDS_EACH" in
'' | *[!0-9]*) echo "fuzz/run.sh: --seconds expects a whole number, got '$SECONDS_EACH'" >&2; exit 2 ;;
esac
case "$JOBS" in
'' | *[!0-9]* | 0) echo "fuzz/run.sh: --jobs expects a positive whole number, got '$JOBS'" >&2; exit 2 ;;
esac
if [ -n "$ONLY" ]; then
    case "$ONLY" in fuzz_*) ;; *) ONLY=fuzz_$ONLY ;; esac
    found=0
    for t in "${TARGETS[@]}"; do [ "$t" = "$ONLY" ] && found=1; done
    if [ $found -eq 0 ]; then
        echo "fuzz/run.sh: no target '$ONLY' (targets: ${TARGETS[*]})" >&2
        exit 2
    fi
    TARGETS=("$ONLY")
fi

# ---- the toolchain: missing means the machine is not set up, which is a failure ----
CC=${CC:-clang}
case "$CC" in *clang*) ;; *) CC=clang ;; esac
if ! command -v "$CC" >/dev/null; then
    echo "fuzz/run.sh: FAILED: '$CC' not found; the fuzz targets need clang (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
probe=$(mktemp -d "${TMPDIR:-/tmp}/comio-fuzz-probe.XXXXXX")
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$probe/p.c"
if ! "$CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
    cat "$probe/log" >&2
    echo "fuzz/run.sh: FAILED: $CC cannot link -fsanitize=fuzzer: the libFuzzer runtime is missing (Debian 12: apt-get install libclang-rt-14-dev)" >&2
    rm -rf "$probe"
    exit 1
fi
rm -rf "$probe"

# ---- build (only the fuzz targets; COMIO_BIN_DIR keeps the daemons out of bin/ should anything build them) ----
echo "== fuzz: configure and build in $BUILD with $($CC --version | head -1)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCOMIO_FUZZ=ON -DCOMIO_BIN_DIR="$BUILD/bin" >"$BUILD.configure.log" 2>&1 ||
    { cat "$BUILD.configure.log" >&2; echo "fuzz/run.sh: FAILED: cmake configure" >&2; exit 1; }
rm -f "$BUILD.configure.log"
cmake --build "$BUILD" --target "${TARGETS[@]}" -j"$(nproc)"

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/comio-fuzz.XXXXXX")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
FAILED=()

# The seeds make_corpus.py writes must be the ones committed: it builds them from the formats and the example
# configs, and a seed that fell behind them (a config key added, a format grown) fuzzes less than it should.
SEED_PY=
for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null && "$py" -c 'import msgpack' 2>/dev/null && { SEED_PY=$py; break; }
done
if [ -n "$SEED_PY" ]; then
    "$SEED_PY" "$FUZZ_DIR/make_corpus.py" "$SCRATCH/seeds" >/dev/null
    stale=()
    while IFS= read -r f; do
        cmp -s "$SCRATCH/seeds/$f" "$FUZZ_DIR/corpus/$f" || stale+=("$f")
    done < <(cd "$SCRATCH/seeds" && find . -type f | sed 's|^\./||' | sort)
    if [ ${#stale[@]} -gt 0 ]; then
        echo "fuzz/run.sh: FAILED: seeds in tests/fuzz/corpus differ from what make_corpus.py writes: ${stale[*]}" >&2
        echo "   run tests/fuzz/make_corpus.py and commit the result" >&2
        exit 1
    fi
    echo "== fuzz: the seed corpus is what make_corpus.py writes"
else
    echo "== fuzz: python3-msgpack missing: the seed corpus was not compared with make_corpus.py"
fi

# Prints the artifacts libFuzzer saved for a failed run, and the last input it was running.
report_failure() {
    local name=$1 log=$2 art
    echo "== $name: FAILED; the end of its log ($log):"
    tail -n 40 "$log"
    for art in "$SCRATCH/$name/artifacts/"*; do
        [ -e "$art" ] || continue
        echo "== $name: crashing input saved as $art"
        echo "   replay: $BUILD/fuzz/$name $art"
        echo "   then minimize it and add it to tests/fuzz/regress/$name/ (tests/fuzz/README.md)"
    done
    grep -m1 -o 'Running: .*' "$log" >/dev/null 2>&1 &&
        echo "== $name: last input run: $(grep -o 'Running: .*' "$log" | tail -1 | cut -d' ' -f2-)"
    return 1
}

# Replays one target's seeds and regression inputs, then fuzzes it; what it
# says goes to stdout (the caller keeps it in a file). Non-zero on a failure.
run_target() {
    local name=$1 bin=$BUILD/fuzz/$1 d f start log runs cov
    local seeds=() dict=() files=()
    mkdir -p "$SCRATCH/$name/corpus" "$SCRATCH/$name/artifacts"
    for d in "$FUZZ_DIR/corpus/$name" "$FUZZ_DIR/regress/$name"; do
        [ -d "$d" ] && seeds+=("$d")
    done
    [ -f "$FUZZ_DIR/$name.dict" ] && dict=(-dict="$FUZZ_DIR/$name.dict")
    local common=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$SCRATCH/$name/artifacts/")

    # 1. Replay every seed and regression input, one by one.
    for d in "${seeds[@]}"; do
        for f in "$d"/*; do [ -f "$f" ] && files+=("$f"); done
    done
    log=$SCRATCH/$name/replay.log
    if [ ${#files[@]} -gt 0 ]; then
        start=$(date +%s)
        timeout 300 "$bin" "${common[@]}" "${files[@]}" </dev/null >"$log" 2>&1 || { report_failure "$name" "$log"; return 1; }
        echo "== $name: replayed ${#files[@]} inputs ($(( $(date +%s) - start )) s)"
    fi

    # 2. Fuzz for a bounded time; new inputs go to the scratch corpus only.
    [ "$SECONDS_EACH" -eq 0 ] && return 0
    log=$SCRATCH/$name/fuzz.log
    timeout $((SECONDS_EACH + 120)) "$bin" "${common[@]}" "${dict[@]}" -max_total_time="$SECONDS_EACH" \
        -print_final_stats=1 "$SCRATCH/$name/corpus" "${seeds[@]}" </dev/null >"$log" 2>&1 ||
        { report_failure "$name" "$log"; return 1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    echo "== $name: fuzzed ${SECONDS_EACH} s: ${runs:-?} runs, coverage ${cov:-?} edges, corpus $(ls "$SCRATCH/$name/corpus" | wc -l) new inputs"
}

# The targets run JOBS at a time, each on one core for its whole budget (a
# libFuzzer process is single-threaded), so every target gets the same time
# as alone while the step takes 1/JOBS of the wall time. Their reports are
# printed in target order once all are done.
running=0
for name in "${TARGETS[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    ( if run_target "$name"; then echo ok; else echo failed; fi ) >"$SCRATCH/$name.out" 2>&1 &
    running=$((running + 1))
done
wait
for name in "${TARGETS[@]}"; do
    out=$SCRATCH/$name.out
    if [ "$(tail -n 1 "$out")" = ok ]; then
        sed '$d' "$out"
    else
        sed '$d' "$out" >&2
        FAILED+=("$name")
    fi
done

if [ ${#FAILED[@]} -gt 0 ]; then
    echo "== fuzz: FAILED: ${FAILED[*]} (scratch kept: $SCRATCH)" >&2
    exit 1
fi
if [ $KEEP -eq 1 ]; then
    echo "== fuzz: all passed; scratch kept: $SCRATCH"
else
    rm -rf "$SCRATCH"
    echo "== fuzz: all passed"
fi
