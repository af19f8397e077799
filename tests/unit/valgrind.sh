#!/usr/bin/env bash
# valgrind.sh - runs every unit test binary of a build under valgrind's memcheck.
#
#   tests/unit/valgrind.sh BUILD_DIR
#
# BUILD_DIR is a build without sanitizers (valgrind and ASan do not mix),
# e.g. `cmake -S . -B build-vg && cmake --build build-vg`; its unit test
# binaries are BUILD_DIR/tests/test_*. Each runs from a scratch directory
# (the tests write files into their working directory), with
# --leak-check=full: a memory error or a definitely/indirectly lost block
# fails it. COMIO_VALGRIND_JOBS tests run at a time (default: the number of
# cores). Exits non-zero if any test fails or none is found.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -eq 1 ] && exit 0
    exit 2
fi
BUILD=$(cd "$1" && pwd)
JOBS=${COMIO_VALGRIND_JOBS:-$(nproc)}
case "$JOBS" in
'' | *[!0-9]* | 0) echo "valgrind.sh: COMIO_VALGRIND_JOBS expects a positive whole number, got '$JOBS'" >&2; exit 2 ;;
esac
if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: FAILED: valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 1
fi

tests=()
for t in "$BUILD"/tests/test_*; do
    [ -f "$t" ] && [ -x "$t" ] && tests+=("$t")
done
if [ ${#tests[@]} -eq 0 ]; then
    echo "valgrind.sh: FAILED: no unit test binaries in $BUILD/tests" >&2
    exit 1
fi
if nm -a "${tests[0]}" 2>/dev/null | grep -q '__asan_init'; then
    echo "valgrind.sh: FAILED: $BUILD was built with sanitizers; valgrind needs a plain build" >&2
    exit 1
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/comio-vg.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

# One test under memcheck; its verdict goes to $SCRATCH/NAME.out, its log to $SCRATCH/NAME.log.
# The timeout is there for a test that hangs: test_failed, 0.1 s natively,
# takes 3 to 5 minutes under memcheck on a busy two-core machine.
run_one() {
    local t=$1 name rc=0 start
    name=$(basename "$t")
    mkdir -p "$SCRATCH/$name"
    start=$(date +%s)
    (cd "$SCRATCH/$name" &&
        timeout 900 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
            --track-origins=yes "$t" </dev/null) >"$SCRATCH/$name.log" 2>&1 || rc=$?
    echo "$rc $(( $(date +%s) - start ))" >"$SCRATCH/$name.out"
}

# JOBS tests at a time (each valgrind is one process on one core); the
# verdicts are printed in the tests' order once all are done.
running=0
for t in "${tests[@]}"; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait
failed=()
for t in "${tests[@]}"; do
    name=$(basename "$t")
    read -r rc secs <"$SCRATCH/$name.out" || { rc=1; secs=?; }
    if [ "$rc" -eq 0 ]; then
        echo "ok   $name ($secs s)"
    else
        echo "FAIL $name (exit $rc; 99 = a valgrind error, 124 = timeout): the end of its log:"
        tail -n 60 "$SCRATCH/$name.log"
        failed+=("$name")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "valgrind.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "valgrind.sh: ${#tests[@]} unit tests clean under memcheck"
