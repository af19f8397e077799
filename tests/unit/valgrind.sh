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
# fails it. Exits non-zero if any test fails or none is found.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    [ $# -eq 1 ] && exit 0
    exit 2
fi
BUILD=$(cd "$1" && pwd)
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
failed=()
for t in "${tests[@]}"; do
    name=$(basename "$t")
    mkdir -p "$SCRATCH/$name"
    log=$SCRATCH/$name.log
    start=$(date +%s)
    rc=0
    (cd "$SCRATCH/$name" &&
        timeout 300 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
            --track-origins=yes "$t" </dev/null) >"$log" 2>&1 || rc=$?
    if [ $rc -eq 0 ]; then
        echo "ok   $name ($(( $(date +%s) - start )) s)"
    else
        echo "FAIL $name (exit $rc; 99 = a valgrind error, 124 = timeout): the end of its log:"
        tail -n 60 "$log"
        failed+=("$name")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "valgrind.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "valgrind.sh: ${#tests[@]} unit tests clean under memcheck"
