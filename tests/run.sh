#!/usr/bin/env bash
# run.sh - installs what is missing, builds, and runs every test of ComIO.
#
#   tests/run.sh [--sanitize | --tsan] [-- PYTEST_ARGS...]
#
# Debian 12 packages are installed with apt-get when missing (as root, or
# through sudo). Then: configure and build (build/, build-asan/ with
# --sanitize, build-tsan/ with --tsan), unit tests under CTest, end-to-end
# tests under pytest against the binaries just built (tests/e2e, and
# tests/fault: kill loop, outages, WAN, full disks, hostile clients; --tsan
# runs tests/e2e only, less the files of TSAN_SKIP below; tests/e2e two at a
# time, COMIO_TEST_JOBS=1 for one;
# PYTEST_ARGS that name test files or directories run just those). --sanitize builds with ASan and UBSan, --tsan with
# ThreadSanitizer (suppressions: tests/tsan.supp); a sanitizer report in any
# daemon's log fails its test. Without either, also the unit tests under
# valgrind, every libFuzzer target of tests/fuzz for COMIO_FUZZ_SECONDS each
# (default 8), and the formatting of the C sources (tests/format.sh). Exits
# non-zero if any step fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SANITIZE=0
TSAN=0
PYTEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize) SANITIZE=1 ;;
    --tsan) TSAN=1 ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    -h | --help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ $SANITIZE -eq 1 ] && [ $TSAN -eq 1 ]; then
    echo "run.sh: --sanitize and --tsan exclude each other (ThreadSanitizer cannot run beside ASan)" >&2
    exit 2
fi

PACKAGES=(build-essential cmake pkg-config libh2o-evloop-dev liblmdb-dev lmdb-utils libmsgpack-dev libyaml-dev libzstd-dev libisal-dev
          libcurl4-openssl-dev libssl-dev libexpat1-dev python3 python3-pytest python3-msgpack curl openssl
          python3-pytest-xdist   # tests/e2e run two at a time (COMIO_TEST_JOBS)
          python3-boto3 awscli   # the S3 API's clients (tests/e2e/test_s3_*.py)
          rclone s3cmd restic s3fs   # the S3 clients of tests/e2e/test_s3_clients.py
          zstd       # the zstd CLI: the compression tests make frames (a bomb, a corrupt one) by hand
          iproute2   # ip netns, veth, tc: the WAN fault test
          systemd    # systemd-analyze verify of the units
          clang libclang-rt-14-dev   # the libFuzzer targets of tests/fuzz
          clang-format               # tests/format.sh: the sources follow .clang-format
          libfuse3-dev fuse3         # forgetfs, the file system of the power-loss tests (tests/powerloss)
          valgrind)  # the unit tests under memcheck

install_missing() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "run.sh: missing packages (${missing[*]}) and not root, no sudo" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# A python3 that has pytest: the one on PATH, else Debian's own (python3-pytest installs there).
pick_python() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import pytest' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

declare -A RESULT=() ELAPSED=()
STEPS=(install configure build ctest pytest)
if [ $SANITIZE -eq 0 ] && [ $TSAN -eq 0 ]; then
    STEPS+=(format valgrind fuzz) # once per CI run is enough: both carry their own instrumentation
fi
for s in "${STEPS[@]}"; do RESULT[$s]="not run"; done

summary() {
    echo
    echo "== summary ($(if [ $SANITIZE -eq 1 ]; then echo "sanitize, build-asan"; elif [ $TSAN -eq 1 ]; then echo "tsan, build-tsan"; else echo "build"; fi))"
    local s failed=0
    for s in "${STEPS[@]}"; do
        printf '   %-10s %-22s %s\n' "$s" "${RESULT[$s]}" "${ELAPSED[$s]:+${ELAPSED[$s]} s}"
        case "${RESULT[$s]}" in ok) ;; *) failed=1 ;; esac
    done
    if [ $failed -eq 0 ]; then echo "== ALL PASSED"; else echo "== FAILED"; fi
    return $failed
}

step() {
    local name=$1
    shift
    # A step that is not in STEPS would run without reaching the summary or the
    # exit status: refuse it loudly instead.
    if [ -z "${RESULT[$name]+set}" ]; then
        echo "run.sh: step '$name' is not in STEPS" >&2
        RESULT[steps]="FAILED ($name not in STEPS)"
        STEPS+=(steps)
        return 1
    fi
    echo
    echo "== $name: $*"
    local rc=0 start=$SECONDS
    "$@" || rc=$?
    ELAPSED[$name]=$((SECONDS - start))
    if [ $rc -eq 0 ]; then RESULT[$name]=ok; else RESULT[$name]="FAILED (exit $rc)"; fi
    return $rc
}

if [ $SANITIZE -eq 1 ]; then
    BUILD=build-asan
    BIN=$ROOT/build-asan/bin
    CMAKE_ARGS=(-DCOMIO_WERROR=ON -DCOMIO_SANITIZE=ON -DCOMIO_BIN_DIR="$BIN")
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    export COMIO_START_TIMEOUT=${COMIO_START_TIMEOUT:-30}
    export COMIO_SANITIZER=address # the tests ask tests/harness/comio.py:sanitizer()
elif [ $TSAN -eq 1 ]; then
    BUILD=build-tsan
    BIN=$ROOT/build-tsan/bin
    CMAKE_ARGS=(-DCOMIO_WERROR=ON -DCOMIO_TSAN=ON -DCOMIO_BIN_DIR="$BIN")
    # halt_on_error: the daemon stops at its first race, and the report in its
    # log fails the test that started it (tests/harness/comio.py); exitcode fails a
    # unit test. Races that are not ComIO's are suppressed, each with its reason.
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp}
    export COMIO_START_TIMEOUT=${COMIO_START_TIMEOUT:-30}
    export COMIO_SANITIZER=thread
    # ThreadSanitizer's shadow memory needs the address space laid out as it
    # expects: with more than 28 bits of mmap randomisation (vm.mmap_rnd_bits,
    # newer kernels) it dies at start with "unexpected memory mapping". Then
    # everything runs without address randomisation (setarch -R), which the
    # daemons and tests inherit; the machine's setting is left alone.
    if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] && [ -z "${COMIO_TSAN_NORANDOM:-}" ]; then
        if ! command -v setarch >/dev/null; then
            echo "run.sh: vm.mmap_rnd_bits > 28 and no setarch: lower it (sysctl vm.mmap_rnd_bits=28) for --tsan" >&2
            exit 1
        fi
        echo "== vm.mmap_rnd_bits > 28: running without address randomisation (setarch -R)"
        export COMIO_TSAN_NORANDOM=1
        exec setarch "$(uname -m)" -R "${BASH:-bash}" "$0" --tsan -- "${PYTEST_ARGS[@]}"
    fi
else
    BUILD=build
    BIN=$ROOT/bin
    CMAKE_ARGS=(-DCOMIO_WERROR=ON -DCOMIO_BIN_DIR="$BIN")
fi
export COMIO_BIN_DIR=$BIN
export COMIO_BUILD_DIR=$ROOT/$BUILD  # tests/e2e/test_install.py installs from it

if ! step install install_missing; then summary || exit 1; fi
if ! step configure cmake -S . -B "$BUILD" "${CMAKE_ARGS[@]}"; then summary || exit 1; fi
if ! step build cmake --build "$BUILD" -j"$(nproc)"; then summary || exit 1; fi

step ctest ctest --test-dir "$BUILD" --output-on-failure || true

# The Python tests. tests/e2e run COMIO_TEST_JOBS (default 2) at a time when
# pytest-xdist is there: each starts its own daemons on its own free ports and
# directories, and most of a test's time is spent waiting on them. tests/fault
# run one at a time (power cuts, kill loops, full disks and network namespaces
# load the machine on purpose). Paths among the arguments run just those, one
# at a time; other arguments go to every run. -rs: a test that skips (no
# netem, not root, ...) says why in the summary; --durations=15: the slowest
# tests of each run, so that the log shows where CI's time goes.
# What ThreadSanitizer skips: files that check one request's parsing and answer
# (malformed input, headers, listings, signatures, config and JSON shapes) or
# offline tools (the bench's scripts, the CLI's output, packaging). Races need
# threads that overlap; these paths run concurrently in the files TSan keeps
# (S3 clients with parallel transfers, HTTP/2, replication, repair, scrub, full
# sync), and the plain and ASan passes still run all of them. This keeps CI's
# three passes within its time.
TSAN_SKIP=(test_s3_list test_s3_multidel test_s3_auth test_malformed test_malformed_table test_config
    test_metrics_format test_json_keys test_http_error_headers test_http_expect test_http_if_range
    test_http_conditional test_bench_s3big test_bench_s3sign test_bench_scrub test_cli test_deploy test_runsh)

run_pytest() {
    local a f rc=0 jobs=() skip=()
    for a in "${PYTEST_ARGS[@]}"; do
        if [ -e "${a%%::*}" ]; then
            "$PY" -m pytest -q -rs "${PYTEST_ARGS[@]}"
            return
        fi
    done
    if [ "${COMIO_TEST_JOBS:-2}" -gt 1 ] && "$PY" -c 'import xdist' 2>/dev/null; then
        jobs=(-n "${COMIO_TEST_JOBS:-2}")
    fi
    if [ $TSAN -eq 1 ]; then
        for f in "${TSAN_SKIP[@]}"; do
            skip+=(--ignore="tests/e2e/$f.py")
        done
    fi
    local start=$SECONDS
    echo "-- tests/e2e${jobs[*]:+ (${jobs[*]})}${skip[*]:+ (ThreadSanitizer skips ${#skip[@]} files: TSAN_SKIP)}"
    "$PY" -m pytest -q -rs --durations=15 "${jobs[@]}" "${skip[@]}" tests/e2e "${PYTEST_ARGS[@]}" || rc=$?
    echo "-- tests/e2e: $((SECONDS - start)) s"
    if [ $TSAN -eq 0 ]; then
        start=$SECONDS
        echo "-- tests/fault"
        "$PY" -m pytest -q -rs --durations=15 tests/fault "${PYTEST_ARGS[@]}" || rc=$?
        echo "-- tests/fault: $((SECONDS - start)) s"
    fi
    return $rc
}

if PY=$(pick_python); then
    step pytest run_pytest || true
else
    echo "run.sh: no python3 with pytest found (python3-pytest should have provided one)" >&2
    RESULT[pytest]="FAILED (no pytest)"
fi

if [ $SANITIZE -eq 0 ] && [ $TSAN -eq 0 ]; then
    step format tests/format.sh || true
    step valgrind tests/unit/valgrind.sh "$BUILD" || true
    step fuzz tests/fuzz/run.sh --seconds "${COMIO_FUZZ_SECONDS:-8}" || true
fi

summary
