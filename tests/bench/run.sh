#!/usr/bin/env bash
# run.sh - the ComIO benchmark, in one command (docs/benchmarks.md).
#
#   tests/bench/run.sh [options]
#
#   --full             also time the drain of 1,000,000 events (minutes, ~10 GB
#                      of sparse image files); same as COMIO_BENCH_FULL=1
#   --phases LIST      comma-separated subset of: http,s3,s3big,cksum,drain,drain2,fanout,lag,big,sync,wan,fullsync,scrub,drain-full
#                      (default: http,s3,s3big,cksum,drain,drain2,fanout,lag,big,sync,wan,fullsync,scrub, plus drain-full with --full)
#   --duration S       seconds of each measured wrk run (default 10)
#   --warmup S         seconds of wrk warm-up before each run (default 2)
#   --rounds N         repeat the four wrk runs, s3big's two uploads and the drain
#                      of 10,000 N times, report the medians (default 1)
#   --no-docs          do not rewrite docs/benchmarks.md and docs/bench-drain.png
#   --no-build         use the binaries in bin/ (or $COMIO_BIN_DIR) as they are
#   --keep             keep the work directory (stores, logs, configs)
#   --provisional MSG  mark the figures as provisional, with this reason
#
# Installs what is missing (nginx-light, wrk, gnuplot-nox, python3, curl and the
# build dependencies; Debian 12, as root or through sudo), builds, then runs on
# 127.0.0.1 only, on free ports, in a temporary directory under $TMPDIR (default
# /var/tmp, so that the stores are on a disk, not tmpfs):
#   http   nginx (static GET, WebDAV PUT) beside storaged, wrk -t2 -c64 4 KiB
#          GET and PUT against each
#   s3     storaged with an S3 credential: wrk -t2 -c64 4 KiB PUT and GET through the native API and through S3
#          (SigV4, x-amz-content-sha256 the body's SHA-256), requests signed by s3sign.py right before each run
#   s3big  storaged with an S3 credential and an 8 GiB image: a 1 GiB native PUT, then the same bytes through an
#          S3 multipart upload by boto3 (8 MiB parts, 10 at a time), each timed to its 200, the image's pages dropped
#          from the page cache before each, so that neither writes over pages an earlier step left cached (s3big.py)
#   cksum  two storaged, storage.checksums true and false: wrk -t2 -c64 4 KiB GET and PUT and 1 MiB GET against
#          each in turn, every round (which goes first alternates); prints each figure's median and the ratio on/off (target: >= 0.95)
#   drain  10,000 PUTs queued on A with repld stopped, then repld started and
#          the drain to B timed; drain-full does the same with 1,000,000
#   drain2 the same 10,000 with two targets (A to B and C, replication.targets),
#          each target's drain timed on its own
#   fanout 50,000 PUTs drained to one target, then to two, with every site's
#          processes capped at the same CPU share (a third of the machine's
#          CPUs each, cgroup cpu controller): the sites behave as separate
#          machines of equal size, which drain2 (three sites sharing every CPU)
#          cannot show. Needs root and a writable cgroup cpu controller.
#   lag    1,000 single 4 KiB PUTs at 100/s, each timed from A's 200 to B's 200
#   big    a 100 MiB object, from A's 200 to B's HEAD showing the right ETag
#   sync   A with one target in async mode, then in sync mode (mode: sync): wrk
#          -t2 -c64 4 KiB PUTs against A, and lone PUTs on loopback and across
#          a 50 ms round trip (the delay relay of tests/fault), each mode in turn
#   wan    through the test link (tests/harness/relay.py, a process): the drain of
#          10,000 4 KiB PUTs on loopback and over a 50 ms round trip; a 1 GiB
#          object over 50 ms capped at 200 Mbit/s; bandwidth_limit 100Mbit
#          against what the link carried; text-like and random objects over a
#          100 Mbit/s 50 ms link with compression none and zstd (tests/bench/wan.py)
#   fullsync  a full sync (B wiped, rebuilt from A) against the drain of the same
#          objects from A's log, on the same sites: 100,000 of 4 KiB, 1,000 of
#          4 KiB (repld's RSS), 2 GiB in 1 MiB objects (also PUT straight to B),
#          and a resync of the two identical sites of 100,000 (fullsync.py)
#   scrub  one storaged filled with 2 GiB in 1 MiB objects and 20,000 of 4 KiB: a plain sequential read of the image's
#          data extents, then a scrub pass unpaced (storage.scrub_rate 0, comio scrub --now's POST /admin/scrub),
#          timed from its status (MB/s, objects/s), the page cache dropped first when root; then 10 s of a pass at
#          the default scrub_rate against that rate (scrubbench.py)
# and samples the RSS of storaged and repld in each phase. A phase that fails
# is reported as such and the others still run. Prints one table, writes it to
# docs/benchmarks.md with the machine and the commands, plots the drain into
# docs/bench-drain.png. Every process it starts is stopped on exit, failure or
# Ctrl-C; the whole run is bounded (COMIO_BENCH_TIMEOUT seconds, default 1800,
# 5400 with --full). Exits 1 if a phase failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ARGV_STR="tests/bench/run.sh"
for a in "$@"; do
    case $a in
    *[!A-Za-z0-9_./=:,+-]* | "") ARGV_STR+=" '${a//\'/\'\\\'\'}'" ;; # quoted so that it can be pasted back
    *) ARGV_STR+=" $a" ;;
    esac
done

FULL=${COMIO_BENCH_FULL:-0}
PHASES=""
DURATION=10
WARMUP=2
ROUNDS=1
DOCS=1
BUILD=1
KEEP=0
PROVISIONAL=""
THREADS=2
CONNS=64
SIZE=4096
DRAIN_SMALL=10000
DRAIN_LARGE=${COMIO_BENCH_DRAIN_LARGE:-1000000}
FANOUT_N=50000 # long enough that the CPU cap's periods (10 ms) average out
LAG_COUNT=1000
LAG_RATE=100
BIG_SIZE=$((100 * 1024 * 1024))
BIG_REPEAT=3
PUT_KEYS=50000 # per wrk thread: the first 100,000 PUTs create, the rest overwrite

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --full) FULL=1 ;;
    --phases) PHASES=${2:?--phases needs a value}; shift ;;
    --phases=*) PHASES=${1#*=} ;;
    --duration) DURATION=${2:?}; shift ;;
    --warmup) WARMUP=${2:?}; shift ;;
    --rounds) ROUNDS=${2:?}; shift ;;
    --no-docs) DOCS=0 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --provisional) PROVISIONAL=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done
[ "$FULL" = 1 ] || FULL=0
if [ -z "$PHASES" ]; then
    PHASES=http,s3,s3big,cksum,drain,drain2,fanout,lag,big,sync,wan,fullsync,scrub
    [ "$FULL" = 1 ] && PHASES=$PHASES,drain-full
fi
for n in "$DURATION" "$WARMUP" "$ROUNDS"; do
    [[ $n =~ ^[0-9]+$ ]] || { echo "run.sh: --duration, --warmup and --rounds take whole numbers" >&2; exit 2; }
done
for p in ${PHASES//,/ }; do
    case $p in http | s3 | s3big | cksum | drain | drain2 | fanout | lag | big | sync | wan | fullsync | scrub | drain-full) ;; *) echo "run.sh: unknown phase '$p' (http,s3,s3big,cksum,drain,drain2,fanout,lag,big,sync,wan,fullsync,scrub,drain-full)" >&2; exit 2 ;; esac
done
[[ ",$PHASES," == *,drain-full,* ]] && FULL=1
TOTAL_TIMEOUT=${COMIO_BENCH_TIMEOUT:-$([ "$FULL" = 1 ] && echo 5400 || echo 1800)}

log() { printf '%s\n' "$*"; }
want() { [[ ",$PHASES," == *",$1,"* ]]; }

# --- processes: every one we start is recorded, and stopped by its id --------------------------------------------
declare -A LIVE=() # pid -> name
LAST=0
spawn() { # spawn NAME LOGFILE CMD... : start in the background, LAST=pid
    local name=$1 logf=$2
    shift 2
    "$@" >>"$logf" 2>&1 </dev/null &
    LAST=$!
    LIVE[$LAST]=$name
}
alive() { kill -0 "$1" 2>/dev/null; }
reap() { # reap PID: wait for it (it has exited or is exiting), forget it
    wait "$1" 2>/dev/null
    local rc=$?
    unset 'LIVE[$1]'
    return $rc
}
kids_of() { pgrep -P "$1" 2>/dev/null || true; }
stop() { # stop PID [SECONDS]: SIGTERM, then SIGKILL (and its children) after SECONDS
    local pid=$1 secs=${2:-20} i kids
    [ -n "${LIVE[$pid]:-}" ] || return 0
    kids=$(kids_of "$pid")
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < secs * 10; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            log "   (${LIVE[$pid]} pid $pid did not stop within ${secs}s of SIGTERM: SIGKILL)"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    reap "$pid"
    for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null; done
    return 0
}
run_fg() { # run_fg NAME LOGFILE CMD...: run to completion, but interruptible (the trap runs at once)
    local name=$1
    spawn "$@"
    local pid=$LAST
    wait "$pid"
    local rc=$?
    unset 'LIVE[$pid]'
    return $rc
}
WORK=""
WATCHDOG=""
cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C must not cut the clean-up short (it is bounded: ~10 s, then SIGKILL)
    local p
    for p in "${!LIVE[@]}"; do [ "$p" = "$WATCHDOG" ] || { alive "$p" && kill -TERM "$p" 2>/dev/null; }; done
    for _ in $(seq 1 100); do
        local any=0
        for p in "${!LIVE[@]}"; do [ "$p" != "$WATCHDOG" ] && alive "$p" && any=1; done
        [ $any = 0 ] && break
        sleep 0.1
    done
    for p in "${!LIVE[@]}"; do
        [ "$p" = "$WATCHDOG" ] && continue
        if alive "$p"; then
            log "   (${LIVE[$p]} pid $p still running: SIGKILL)"
            local k
            for k in $(kids_of "$p"); do kill -KILL "$k" 2>/dev/null; done
            kill -KILL "$p" 2>/dev/null
        fi
        wait "$p" 2>/dev/null
    done
    if [ -n "$WATCHDOG" ] && alive "$WATCHDOG"; then kill -TERM "$WATCHDOG" 2>/dev/null; wait "$WATCHDOG" 2>/dev/null; fi
    cg_cleanup
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then log "== work directory kept: $WORK"; else rm -rf "$WORK"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'log ""; log "== interrupted: stopping everything this run started"; exit 130' INT
trap 'log ""; log "== stopped (SIGTERM, or the ${TOTAL_TIMEOUT}s time limit): stopping everything this run started"; exit 124' TERM

# --- packages and build --------------------------------------------------------------------------------------------
install_missing() {
    local need=(build-essential cmake pkg-config libh2o-evloop-dev liblmdb-dev libmsgpack-dev libyaml-dev libzstd-dev libisal-dev
        libcurl4-openssl-dev libssl-dev libexpat1-dev curl wrk gnuplot-nox procps
        python3-pytest # the sync and wan phases start their sites with the test harness, which imports pytest
        python3-boto3)  # s3big uploads with boto3
    local missing=() p
    for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v python3 >/dev/null || missing+=(python3)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "== installing: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { log "run.sh: missing packages (${missing[*]}), not root and no sudo" >&2; return 1; }
        sudo=(sudo)
    fi
    # nginx's package must not start a system nginx on port 80: keep services from starting during the install
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee $policy >/dev/null && "${sudo[@]}" chmod 755 $policy && added=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    local rc=$?
    [ $added = 1 ] && "${sudo[@]}" rm -f $policy
    if [ $rc -ne 0 ] && [[ " ${missing[*]} " == *" nginx-light "* ]]; then
        log "   nginx-light did not install; trying nginx"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >/dev/null
        rc=$?
    fi
    return $rc
}
install_missing || { log "run.sh: installing the packages failed" >&2; exit 1; }
PY=$(command -v python3)

# --- work directory, time limit ----------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/comio-bench.XXXXXX") || exit 1
RES=$WORK/results
mkdir -p "$RES"
: >"$RES/phases.txt"
: >"$RES/commands.txt"
(
    sleep "$TOTAL_TIMEOUT" &
    sp=$!
    trap 'kill $sp 2>/dev/null; exit 0' TERM
    wait $sp
    echo "run.sh: the run exceeded ${TOTAL_TIMEOUT}s (COMIO_BENCH_TIMEOUT); stopping it" >&2
    kill -TERM $$ 2>/dev/null
) &
WATCHDOG=$!
LIVE[$WATCHDOG]=watchdog
T_START=$(date +%s)
BUILD_NOTE=""
if [ -n "${COMIO_BIN_DIR:-}" ]; then
    BIN=$COMIO_BIN_DIR
    BUILD_NOTE="binaries from COMIO_BIN_DIR=$BIN (not built by this run)"
else
    BIN=$ROOT/bin
    if [ "$BUILD" = 1 ]; then
        log "== building (cmake, build/)"
        if (cd "$ROOT" && cmake -S . -B build -DCOMIO_WERROR=ON >"$WORK/build.log" 2>&1 && cmake --build build -j"$(nproc)" >>"$WORK/build.log" 2>&1); then
            BUILD_NOTE="built by this run (build/)"
        elif [ -x "$BIN/storaged" ] && [ -x "$BIN/repld" ]; then
            log "   the build failed; using the existing binaries in bin/"
            tail -5 "$WORK/build.log" | sed 's/^/   | /'
            BUILD_NOTE="the build failed; the binaries already in bin/ were used"
        else
            log "run.sh: the build failed and there are no binaries in bin/:" >&2
            tail -20 "$WORK/build.log" >&2
            exit 1
        fi
    else
        BUILD_NOTE="not rebuilt (--no-build)"
    fi
fi
BIN_SHOW=$BIN
[ "$BIN" = "$ROOT/bin" ] && BIN_SHOW=bin
for b in storaged repld; do
    [ -x "$BIN/$b" ] || { log "run.sh: $BIN/$b does not exist" >&2; exit 1; }
done


free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cmd() { printf '%s\n' "$*" >>"$RES/commands.txt"; }
phase_result() { echo "$1 $2 ${3:-}" >>"$RES/phases.txt"; }

# CPU used by other processes: the CPU time the machine spent busy (/proc/stat) less the CPU time of this
# script and of every process it started and reaped (its own utime and stime, and its children's cutime and
# cstime, which include their children's): measured over each phase, once the phase's processes are reaped.
FOREIGN_MAX=0
FOREIGN_NOTE=""
cpu_mark() { # -> "busy_ticks total_ticks own_ticks"
    local c s
    read -ra c </proc/stat
    read -ra s <"/proc/$$/stat"
    local busy=$((c[1] + c[2] + c[3] + c[6] + c[7] + c[8])) total=$((c[1] + c[2] + c[3] + c[4] + c[5] + c[6] + c[7] + c[8]))
    echo "$busy $total $((s[13] + s[14] + s[15] + s[16]))"
}
foreign_cpu() { # foreign_cpu PHASE "MARK_AT_START": prints and records the % of the machine others used
    local a b
    read -ra a <<<"$2"
    read -ra b <<<"$(cpu_mark)"
    local dt=$((b[1] - a[1])) other=$(((b[0] - a[0]) - (b[2] - a[2])))
    [ $other -lt 0 ] && other=0
    local pct=$((dt > 0 ? other * 100 / dt : 0))
    [ $pct -gt "$FOREIGN_MAX" ] && FOREIGN_MAX=$pct
    FOREIGN_NOTE="${FOREIGN_NOTE:+$FOREIGN_NOTE, }$1 $pct%"
    log "   (other processes used $pct% of the CPUs during this phase)"
}

# --- sites ---------------------------------------------------------------------------------------------------------
TOKEN=$("$PY" -c 'import secrets; print(secrets.token_hex(32))')
printf '%s\n' "$TOKEN" >"$WORK/token"
chmod 600 "$WORK/token"

# site_config DIR ID PORT SIZE ROLE [REMOTE_PORT]: ROLE is plain, primary or replica
site_config() {
    local dir=$1 id=$2 port=$3 size=$4 role=$5 remote=${6:-}
    mkdir -p "$dir"
    {
        echo "site:"
        echo "  id: $id"
        echo "server:"
        echo "  listen: 127.0.0.1"
        echo "  port: $port"
        echo "  storage_path: $dir/store.img"
        echo "  storage_size: $size"
        echo "  meta_path: $dir/store.meta"
        echo "replication:"
        echo "  socket: $dir/repld.sock"
        case $role in
        primary)
            echo "  enabled: true"
            echo "  remote_url: http://127.0.0.1:$remote"
            echo "  remote_token_file: $WORK/token" ;;
        replica)
            echo "  enabled: false"
            echo "  accept_token_file: $WORK/token" ;;
        fanout) # remote: "port,port": one target per site
            echo "  enabled: true"
            echo "  targets:"
            local p
            for p in ${remote//,/ }; do
                echo "    - name: site-$p"
                echo "      url: http://127.0.0.1:$p"
                echo "      token_file: $WORK/token"
            done ;;
        *) echo "  enabled: false" ;;
        esac
        echo "logging:"
        echo "  level: info"
        echo "  format: text"
    } >"$dir/config.yaml"
}
# start_storaged DIR -> LAST: waits until /admin/health answers (15 s at most)
start_storaged() {
    local dir=$1 port
    port=$(sed -n 's/^  port: //p' "$dir/config.yaml")
    spawn "storaged $(basename "$dir")" "$dir/storaged.log" "$BIN/storaged" --config "$dir/config.yaml"
    local pid=$LAST i
    for ((i = 0; i < 150; i++)); do
        if ! alive "$pid"; then
            reap "$pid"
            log "   storaged ($dir) exited during start-up; its log:"
            tail -20 "$dir/storaged.log" | sed 's/^/   | /'
            return 1
        fi
        curl -fs -m 1 "http://127.0.0.1:$port/admin/health" >/dev/null 2>&1 && { LAST=$pid; return 0; }
        sleep 0.1
    done
    log "   storaged ($dir) did not answer /admin/health within 15 s; its log:"
    tail -20 "$dir/storaged.log" | sed 's/^/   | /'
    stop "$pid" 5
    return 1
}
start_repld() { # start_repld DIR [CGROUP] -> LAST (does not wait); with CGROUP, repld runs in it from its first instruction
    if [ -n "${2:-}" ]; then
        spawn "repld $(basename "$1")" "$1/repld.log" sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" --config "$3"' \
            sh "$2" "$BIN/repld" "$1/config.yaml"
    else
        spawn "repld $(basename "$1")" "$1/repld.log" "$BIN/repld" --config "$1/config.yaml"
    fi
}

# --- CPU caps (phase fanout): one cgroup per site, each capped at the same share of the machine ----------------------
CG_KIND="" CG_BASE="" CG_ERR="" CG_DIRS=()
CG_PERIOD_US=10000 # short periods: a drain of 50,000 events spans ~100 of them
cg_init() {        # finds a writable cgroup cpu controller (v2: cpu.max, v1: cpu.cfs_quota_us); else CG_ERR says why
    if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
        CG_KIND=v2 CG_BASE=/sys/fs/cgroup
        if ! grep -qw cpu "$CG_BASE/cgroup.subtree_control" && ! echo +cpu >"$CG_BASE/cgroup.subtree_control" 2>/dev/null; then
            CG_ERR="cannot enable the cpu controller in $CG_BASE/cgroup.subtree_control (run as root, outside a container)"
            return 1
        fi
    elif [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        CG_KIND=v1 CG_BASE=/sys/fs/cgroup/cpu
    else
        CG_ERR="no cgroup cpu controller under /sys/fs/cgroup"
        return 1
    fi
    local probe=$CG_BASE/comio-bench-probe-$$
    if ! mkdir "$probe" 2>/dev/null; then
        CG_ERR="cannot create a cgroup under $CG_BASE (run as root, outside a container)"
        return 1
    fi
    rmdir "$probe"
}
cg_make() { # cg_make NAME CPUS -> LAST: a cgroup capped at CPUS (may be fractional) CPUs
    local d=$CG_BASE/comio-bench-$$-$1 quota
    quota=$(awk -v c="$2" -v p=$CG_PERIOD_US 'BEGIN { printf "%d", c * p }')
    mkdir -p "$d" || return 1
    CG_DIRS+=("$d")
    if [ "$CG_KIND" = v2 ]; then
        echo "$quota $CG_PERIOD_US" >"$d/cpu.max" || return 1
    else
        echo $CG_PERIOD_US >"$d/cpu.cfs_period_us" && echo "$quota" >"$d/cpu.cfs_quota_us" || return 1
    fi
    LAST=$d
}
cg_join() { echo "$2" >"$1/cgroup.procs"; } # cg_join DIR PID: the process and all its threads
cg_cleanup() {                              # the cgroups go once their processes have exited
    local d
    for d in "${CG_DIRS[@]}"; do
        [ -d "$d" ] || continue
        while read -r p; do echo "$p" >"$CG_BASE/cgroup.procs"; done <"$d/cgroup.procs" 2>/dev/null
        rmdir "$d" 2>/dev/null
    done
    CG_DIRS=()
}
wait_repld() { # wait_repld DIR PID: until repld answers --status (10 s at most)
    local i
    for ((i = 0; i < 100; i++)); do
        alive "$2" || { log "   repld exited during start-up; its log:"; tail -20 "$1/repld.log" | sed 's/^/   | /'; return 1; }
        timeout -k 1 3 "$BIN/repld" --config "$1/config.yaml" --status >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "   repld did not answer on its socket within 10 s"
    return 1
}
first_sync() { # first_sync DIR: runs repld once on the still empty site, until every target's first full sync is
    #            done (nothing to ship), then stops it: the repld started later drains the log alone, instead of
    #            also shipping every object again in a new target's full sync (docs/replication.md, Full sync)
    start_repld "$1"
    local pid=$LAST i
    wait_repld "$1" "$pid" || { stop "$pid" 5; return 1; }
    for ((i = 0; i < 100; i++)); do
        timeout -k 1 3 "$BIN/repld" --config "$1/config.yaml" --status 2>/dev/null |
            "$PY" -c 'import json, sys; t = json.load(sys.stdin)["targets"]; sys.exit(0 if all(x["sync"]["phase"] == "done" for x in t) else 1)' &&
            { stop "$pid" 20; return 0; }
        sleep 0.1
    done
    log "   repld's first full sync of the empty site did not finish within 10 s"
    stop "$pid" 20
    return 1
}
start_rss() { # start_rss CSV NAME=PID... -> LAST
    local out=$1
    shift
    spawn "rss sampler" "$WORK/rss.log" "$PY" "$HERE/rss.py" --out "$out" --interval 0.02 "$@"
}
tail_logs() { # tail_logs DIR...
    local d f
    for d in "$@"; do
        for f in "$d"/*.log; do
            [ -s "$f" ] || continue
            log "   --- last lines of $f"
            tail -8 "$f" | sed 's/^/   | /'
        done
    done
}
repld_hint() { # repld_hint STATUS_JSON: "; repld: remote ..." when repld saw the replica fail
    "$PY" - "$1" <<'EOF' 2>/dev/null
import json, sys
r = json.load(open(sys.argv[1])).get("remote", {})
if r.get("state") not in (None, "up") or r.get("last_error"):
    print("; repld: remote %s, last error: %s" % (r.get("state"), r.get("last_error") or "-"))
EOF
}
mib_free() { df -Pk "$WORK" | awk 'NR==2 {print int($4/1024)}'; }

# --- phase: http ------------------------------------------------------------------------------------------------
nginx_conf() { # nginx_conf DIR PORT
    local d=$1 port=$2 user=""
    [ "$(id -u)" -eq 0 ] && user="user root;"
    mkdir -p "$d/www/bench/get" "$d/www/bench/put" "$d/tmp" "$d/logs"
    cat >"$d/nginx.conf" <<EOF
# nginx for the benchmark: static files, and WebDAV PUT (temp file on the same
# file system, then rename; no fsync).
$user
worker_processes $(nproc);
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        root $d/www;
        location /bench/put/ {
            dav_methods PUT;
            client_max_body_size 200m;
            dav_access user:rw group:r all:r;
        }
    }
}
EOF
}

# wrk_run NAME URL RSS_TARGETS SCRIPT [ARGS...]: warm-up, then the measured run with the RSS sampler on; output in
# $WRK_DIR (default $RES/http); with WRK_CPU_PID, that process's CPU seconds over the measured run go to NAME.cpu
wrk_run() {
    local name=$1 url=$2 targets=$3 script=$4 out=${WRK_DIR:-$RES/http}
    shift 4
    local args=()
    [ $# -gt 0 ] && args=(-- "$@")
    if [ "$WARMUP" -gt 0 ]; then
        run_fg "wrk warm-up" "$out/$name.warmup" timeout -k 5 $((WARMUP + 30)) \
            wrk -t$THREADS -c$CONNS -d${WARMUP}s --timeout 10s -s "$HERE/$script" "$url" "${args[@]}"
    fi
    start_rss "$out/$name.rss.csv" $targets
    local rs=$LAST cpu0=""
    [ -n "${WRK_CPU_PID:-}" ] && cpu0=$(cpu_of "$WRK_CPU_PID")
    run_fg "wrk" "$out/$name.wrk" timeout -k 5 $((DURATION + 30)) \
        wrk -t$THREADS -c$CONNS -d${DURATION}s --timeout 10s -s "$HERE/$script" "$url" "${args[@]}"
    local rc=$?
    [ -n "$cpu0" ] && cpu_delta "$WRK_CPU_PID" "$cpu0" >"$out/$name.cpu"
    stop "$rs" 5
    cmd "wrk -t$THREADS -c$CONNS -d${DURATION}s --timeout 10s -s tests/bench/$script $url${args[*]:+ ${args[*]}}"
    local line
    line=$(grep '^WRKJSON' "$out/$name.wrk" | sed 's/^WRKJSON //')
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        log "   wrk $name failed (status $rc):"
        tail -5 "$out/$name.wrk" | sed 's/^/   | /'
        return 1
    fi
    "$PY" -c 'import json,sys; w=json.loads(sys.argv[2]); e=w["errors"]; l=w["latency_us"]
print("   %-12s %9.0f req/s  latency p50 %6.2f ms  p99 %6.2f ms  errors %d" % (sys.argv[1], w["req_per_s"], l["p50"]/1e3, l["p99"]/1e3, sum(e.values())))' \
        "$name" "$line"
}

phase_http() {
    log "== http: nginx and storaged, wrk -t$THREADS -c$CONNS, 4 KiB GET and PUT, ${WARMUP}s warm-up + ${DURATION}s each"
    mkdir -p "$RES/http"
    local ng=$WORK/nginx site=$WORK/http np sp
    np=$(free_port) && sp=$(free_port) || return 1
    nginx_conf "$ng" "$np"
    head -c $SIZE /dev/urandom >"$ng/www/bench/get/4k"
    spawn nginx "$ng/logs/stderr.log" nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/logs/error.log"
    local ngpid=$LAST i
    for ((i = 0; i < 100; i++)); do
        curl -fs -m 1 -o /dev/null "http://127.0.0.1:$np/bench/get/4k" && break
        alive $ngpid || break
        sleep 0.1
    done
    if ! curl -fs -m 2 -o /dev/null "http://127.0.0.1:$np/bench/get/4k"; then
        HTTP_ERR="nginx did not start"
        tail_logs "$ng/logs"
        stop $ngpid 5
        return 1
    fi
    cp "$ng/nginx.conf" "$RES/http/nginx.conf"
    cmd "nginx -p $ng -c $ng/nginx.conf   # the configuration is kept with the results (http/nginx.conf)"
    site_config "$site" bench-http "$sp" 4GB plain
    if ! start_storaged "$site"; then HTTP_ERR="storaged did not start"; stop $ngpid 5; return 1; fi
    local spid=$LAST
    cp "$site/config.yaml" "$RES/http/storaged.yaml"
    cmd "$BIN_SHOW/storaged --config $site/config.yaml   # replication disabled, 4GB image file (http/storaged.yaml)"
    if ! curl -fs -m 5 -o /dev/null -X PUT --data-binary @"$ng/www/bench/get/4k" "http://127.0.0.1:$sp/bench/get/4k"; then
        HTTP_ERR="PUT of the GET object to storaged failed"; stop $spid; stop $ngpid; return 1
    fi
    # same bytes from both
    if [ "$(curl -fs -m 10 "http://127.0.0.1:$np/bench/get/4k" | md5sum)" != "$(curl -fs -m 10 "http://127.0.0.1:$sp/bench/get/4k" | md5sum)" ]; then
        HTTP_ERR="nginx and storaged do not serve the same 4 KiB object"; stop $spid; stop $ngpid; return 1
    fi
    local r ok=0
    for ((r = 1; r <= ROUNDS; r++)); do
        [ "$ROUNDS" -gt 1 ] && log "   round $r of $ROUNDS"
        wrk_run get-nginx-$r "http://127.0.0.1:$np/bench/get/4k" "nginx-workers=+$ngpid" get.lua || ok=1
        wrk_run get-comio-$r "http://127.0.0.1:$sp/bench/get/4k" "storaged=$spid" get.lua || ok=1
        wrk_run put-nginx-$r "http://127.0.0.1:$np" "nginx-workers=+$ngpid" put.lua $PUT_KEYS $SIZE /bench/put/ || ok=1
        wrk_run put-comio-$r "http://127.0.0.1:$sp" "storaged=$spid" put.lua $PUT_KEYS $SIZE /bench/put/ || ok=1
    done
    curl -fs -m 10 "http://127.0.0.1:$sp/metrics" >"$RES/http/storaged-metrics.txt" 2>/dev/null
    alive $spid || { HTTP_ERR="storaged died during the runs"; ok=1; }
    alive $ngpid || { HTTP_ERR="nginx died during the runs"; ok=1; }
    stop $spid 30
    stop $ngpid 10
    [ $ok = 0 ] || { HTTP_ERR=${HTTP_ERR:-"a wrk run failed"}; tail_logs "$site" "$ng/logs"; }
    return $ok
}

# --- phase: cksum ----------------------------------------------------------------------------------------------

# The cost of block checksums (docs/storage.md): the same wrk runs against a storaged with storage.checksums true
# and one with false, alternated within each round so that both see the same machine.
phase_cksum() {
    log "== cksum: storaged with block checksums on and off, wrk -t$THREADS -c$CONNS, 4 KiB GET and PUT, 1 MiB GET, ${WARMUP}s warm-up + ${DURATION}s each"
    mkdir -p "$RES/cksum"
    local mode port pid ok=0 r
    declare -A CK_PORT=() CK_PID=()
    head -c $SIZE /dev/urandom >"$WORK/cksum-4k"
    head -c 1048576 /dev/urandom >"$WORK/cksum-1m"
    for mode in on off; do
        port=$(free_port) || return 1
        site_config "$WORK/cksum-$mode" bench-cksum-$mode "$port" 4GB plain
        printf 'storage:\n  checksums: %s\n' "$([ $mode = on ] && echo true || echo false)" >>"$WORK/cksum-$mode/config.yaml"
        if ! start_storaged "$WORK/cksum-$mode"; then
            CKSUM_ERR="storaged (checksums $mode) did not start"
            [ -n "${CK_PID[on]:-}" ] && stop "${CK_PID[on]}"
            return 1
        fi
        CK_PID[$mode]=$LAST
        CK_PORT[$mode]=$port
        cp "$WORK/cksum-$mode/config.yaml" "$RES/cksum/storaged-$mode.yaml"
        cmd "$BIN_SHOW/storaged --config $WORK/cksum-$mode/config.yaml   # storage.checksums $mode (cksum/storaged-$mode.yaml)"
        for f in 4k 1m; do
            if ! curl -fs -m 10 -o /dev/null -X PUT --data-binary @"$WORK/cksum-$f" "http://127.0.0.1:$port/bench/get/$f"; then
                CKSUM_ERR="PUT of the GET objects to storaged (checksums $mode) failed"; ok=1
            fi
        done
    done
    local order
    for ((r = 1; r <= ROUNDS && ok == 0; r++)); do
        # which one goes first alternates by round: a run that follows another (warmer caches, or a machine
        # still busy with the last one) is not always the same mode's
        order="on off"
        [ $((r % 2)) = 0 ] && order="off on"
        [ "$ROUNDS" -gt 1 ] && log "   round $r of $ROUNDS ($order)"
        for mode in $order; do
            WRK_DIR=$RES/cksum WRK_CPU_PID=${CK_PID[$mode]} wrk_run get4k-$mode-$r "http://127.0.0.1:${CK_PORT[$mode]}/bench/get/4k" "storaged=${CK_PID[$mode]}" get.lua || ok=1
        done
        for mode in $order; do
            WRK_DIR=$RES/cksum WRK_CPU_PID=${CK_PID[$mode]} wrk_run put4k-$mode-$r "http://127.0.0.1:${CK_PORT[$mode]}" "storaged=${CK_PID[$mode]}" \
                put.lua $PUT_KEYS $SIZE /bench/put/ || ok=1
        done
        # the PUTs leave about a GB of dirty pages in each store, which the kernel would write back during
        # whichever runs come 30 s later (one mode's or the other's): both are flushed now, between the runs
        sync
        for mode in $order; do
            WRK_DIR=$RES/cksum WRK_CPU_PID=${CK_PID[$mode]} wrk_run get1m-$mode-$r "http://127.0.0.1:${CK_PORT[$mode]}/bench/get/1m" "storaged=${CK_PID[$mode]}" get.lua || ok=1
        done
    done
    for mode in on off; do
        curl -fs -m 10 "http://127.0.0.1:${CK_PORT[$mode]}/metrics" >"$RES/cksum/storaged-$mode-metrics.txt" 2>/dev/null
        alive "${CK_PID[$mode]}" || { CKSUM_ERR="storaged (checksums $mode) died during the runs"; ok=1; }
        stop "${CK_PID[$mode]}" 30
    done
    if [ $ok = 0 ]; then
        # medians of the rounds, and on/off; a run with error answers fails the phase
        "$PY" - "$RES/cksum" "$ROUNDS" <<'PYEOF' | tee "$RES/cksum/summary.txt" || { CKSUM_ERR="a run counted errors"; ok=1; }
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def run(name):
    for line in open("%s/%s.wrk" % (d, name)):
        if line.startswith("WRKJSON "):
            return json.loads(line[8:])
def cpu_us(name, w):
    # storaged's CPU per request: steadier than req/s on a machine others use too
    try:
        return float(open("%s/%s.cpu" % (d, name)).read()) * 1e6 / (w["requests"] or 1)
    except (OSError, ValueError):
        return float("nan")
bad = 0
for what, label in (("get4k", "GET 4 KiB"), ("put4k", "PUT 4 KiB"), ("get1m", "GET 1 MiB")):
    med, cpu, rcpu = {}, {}, {}
    for mode in ("on", "off"):
        names = ["%s-%s-%d" % (what, mode, r) for r in range(1, rounds + 1)]
        ws = [run(n) for n in names]
        bad += sum(sum(w["errors"].values()) for w in ws)
        med[mode] = statistics.median(w["req_per_s"] for w in ws)
        rcpu[mode] = [cpu_us(n, w) for n, w in zip(names, ws)]
        cpu[mode] = statistics.median(rcpu[mode])
    # each round's on/off CPU ratio pairs two runs made back to back: how far the rounds agree shows the noise
    rounds_cpu = " ".join("%.2f" % (a / b if b else float("nan")) for a, b in zip(rcpu["on"], rcpu["off"]))
    print("   %-10s checksums on %9.0f req/s %8.1f CPU us/req   off %9.0f req/s %8.1f CPU us/req   on/off %.3fx (CPU %.3fx; rounds %s)" %
          (label, med["on"], cpu["on"], med["off"], cpu["off"], med["on"] / med["off"], cpu["on"] / cpu["off"], rounds_cpu))
sys.exit(1 if bad else 0)
PYEOF
    fi
    [ $ok = 0 ] || { CKSUM_ERR=${CKSUM_ERR:-"a wrk run failed"}; tail_logs "$WORK/cksum-on" "$WORK/cksum-off"; }
    return $ok
}

# --- phase: s3 -------------------------------------------------------------------------------------------------
S3_PUT_KEYS=20000 # per wrk thread, each API its own keys: the first 40,000 PUTs create, the rest overwrite
S3_GET_KEYS=1000  # objects filled before the runs, read round by both APIs
S3_AK=AKIDCOMIOBENCH
# s3_sign NAME METHOD KEYS COUNT [--native]: the requests of one run, signed now (valid 15 minutes), sent once to check
s3_sign() {
    local name=$1 method=$2 keys=$3 count=$4
    shift 4
    run_fg s3sign "$RES/s3/$name.sign.log" timeout -k 5 120 "$PY" "$HERE/s3sign.py" --host "127.0.0.1:$S3_PORT" \
        --method "$method" --keys "$keys" --count "$count" --size $SIZE --out "$WORK/s3/$name.req" \
        --access-key $S3_AK --secret-file "$WORK/s3/secret" --check "$@" || {
        S3_ERR="s3sign.py $name: $(tail -1 "$RES/s3/$name.sign.log")"
        return 1
    }
}
# s3_run NAME URL METHOD KEYS COUNT [--native]: signs, then wrk; a run with an error status fails the phase
s3_run() {
    local name=$1 url=$2 method=$3 keys=$4 count=$5
    shift 5
    s3_sign "$name" "$method" "$keys" "$count" "$@" || return 1
    WRK_DIR=$RES/s3 WRK_CPU_PID=$S3_PID wrk_run "$name" "$url" "storaged=$S3_PID" s3req.lua "$WORK/s3/$name.req" $THREADS ||
        { S3_ERR="wrk $name failed"; return 1; }
    local bad
    bad=$("$PY" -c 'import json,sys; w=json.loads(sys.argv[1]); print(sum(w["errors"].values()))' \
        "$(sed -n 's/^WRKJSON //p' "$RES/s3/$name.wrk")")
    [ "$bad" = 0 ] || { S3_ERR="wrk $name counted $bad errors (non-2xx answers, timeouts)"; return 1; }
}
phase_s3() {
    log "== s3: storaged, the native API and S3 (SigV4, signed payload), wrk -t$THREADS -c$CONNS 4 KiB PUT and GET, ${WARMUP}s warm-up + ${DURATION}s each"
    mkdir -p "$RES/s3" "$WORK/s3"
    local site=$WORK/s3/site
    S3_PORT=$(free_port) || return 1
    site_config "$site" bench-s3 "$S3_PORT" 4GB plain
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(30))' >"$WORK/s3/secret"
    chmod 600 "$WORK/s3/secret"
    {
        echo "s3:"
        echo "  region: us-east-1"
        echo "  credentials:"
        echo "    - access_key: $S3_AK"
        echo "      secret_key_file: $WORK/s3/secret"
    } >>"$site/config.yaml"
    if ! start_storaged "$site"; then S3_ERR="storaged did not start"; return 1; fi
    S3_PID=$LAST
    cp "$site/config.yaml" "$RES/s3/storaged.yaml"
    cmd "$BIN_SHOW/storaged --config $site/config.yaml   # replication disabled, 4GB image file, one s3 credential (s3/storaged.yaml)"
    local url=http://127.0.0.1:$S3_PORT
    cmd "python3 tests/bench/fill.py --url $url --bucket bench --prefix get/k --count $S3_GET_KEYS --size $SIZE"
    if ! run_fg fill "$RES/s3/fill.log" "$PY" "$HERE/fill.py" --url "$url" --bucket bench --prefix get/k --count $S3_GET_KEYS \
        --size $SIZE --conns $CONNS --timeout 120 --progress 0; then
        S3_ERR="filling the GET objects failed: $(tail -1 "$RES/s3/fill.log")"
        stop "$S3_PID"
        return 1
    fi
    cmd "python3 tests/bench/s3sign.py --host 127.0.0.1:PORT --method PUT|GET --keys bench/put/n%07d|bench/put/s%07d|bench/get/k%08d --count N --size $SIZE --out FILE [--native] --check   # right before each run"
    local r ok=0 nput=$((S3_PUT_KEYS * THREADS))
    for ((r = 1; r <= ROUNDS; r++)); do
        [ "$ROUNDS" -gt 1 ] && log "   round $r of $ROUNDS"
        s3_run put-native-$r "$url" PUT bench/put/n%07d $nput --native || ok=1
        s3_run put-s3-$r "$url" PUT bench/put/s%07d $nput || ok=1
        s3_run get-native-$r "$url" GET bench/get/k%08d $S3_GET_KEYS --native || ok=1
        s3_run get-s3-$r "$url" GET bench/get/k%08d $S3_GET_KEYS || ok=1
        [ $ok = 0 ] || break
    done
    curl -fs -m 10 "$url/metrics" >"$RES/s3/storaged-metrics.txt" 2>/dev/null
    alive "$S3_PID" || { S3_ERR="storaged died during the runs"; ok=1; }
    stop "$S3_PID" 30
    [ $ok = 0 ] || { S3_ERR=${S3_ERR:-"a wrk run failed"}; tail_logs "$site"; }
    return $ok
}

# --- phase: s3big --------------------------------------------------------------------------------------------------
S3BIG_SIZE=$((1024 * 1024 * 1024))
S3BIG_PART=$((8 * 1024 * 1024))
# The python3 that can import boto3, in BOTO_PY; 1 if none. Debian's first: the figures are of its boto3
# (python3-boto3, 1.26 on Debian 12), which sends no CRC32 checksums with the parts, as boto3 1.36 and later do.
boto_python() {
    local py
    BOTO_PY=""
    for py in /usr/bin/python3 "$PY"; do
        "$py" -c 'import boto3' 2>/dev/null && { BOTO_PY=$py; return 0; }
    done
    return 1
}
phase_s3big() {
    local dir=$RES/s3big site=$WORK/s3big/site
    mkdir -p "$dir" "$WORK/s3big"
    log "== s3big: a $((S3BIG_SIZE >> 20)) MiB native PUT, then the same bytes as an S3 multipart upload (boto3, $((S3BIG_PART >> 20)) MiB parts), $ROUNDS round(s)"
    boto_python || { S3BIG_ERR="needs a python3 with boto3 (Debian: python3-boto3)"; return 1; }
    local port
    port=$(free_port) || return 1
    # 8 GiB (sparse): a Complete needs room for the parts and their copy beside the previous round's two objects
    site_config "$site" bench-s3big "$port" 8GiB plain
    sed -i 's/^  storage_size: .*/&\n  max_object_size: 2GiB/' "$site/config.yaml"
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(30))' >"$WORK/s3big/secret"
    chmod 600 "$WORK/s3big/secret"
    {
        echo "s3:"
        echo "  region: us-east-1"
        echo "  credentials:"
        echo "    - access_key: $S3_AK"
        echo "      secret_key_file: $WORK/s3big/secret"
    } >>"$site/config.yaml"
    if ! start_storaged "$site"; then S3BIG_ERR="storaged did not start"; return 1; fi
    local pid=$LAST url=http://127.0.0.1:$port rc
    cp "$site/config.yaml" "$dir/storaged.yaml"
    cmd "$BIN_SHOW/storaged --config $site/config.yaml   # replication disabled, 8GiB image, max_object_size 2GiB, one s3 credential (s3big/storaged.yaml)"
    # --image: the image's pages dropped from the page cache before each upload. Whether an upload's extent was
    # written before (the image is sparse) made no difference measured here; whether its pages were already cached
    # did: a native PUT over an extent a copied Complete had just freed wrote into cached pages and was much faster
    # (docs/benchmarks.md, s3big). With the cache dropped, both uploads write into uncached space, as on a store
    # much larger than memory.
    cmd "python3 tests/bench/s3big.py --url $url --pid PID --access-key $S3_AK --secret-file FILE --work DIR --size $S3BIG_SIZE --part $S3BIG_PART --concurrency 10 --rounds $ROUNDS --image IMAGE"
    run_fg s3big "$dir/s3big.log" timeout -k 5 $((ROUNDS * 600 + 120)) "$BOTO_PY" "$HERE/s3big.py" --url "$url" --pid "$pid" \
        --access-key $S3_AK --secret-file "$WORK/s3big/secret" --work "$WORK/s3big" --size $S3BIG_SIZE \
        --part $S3BIG_PART --concurrency 10 --rounds "$ROUNDS" --image "$site/store.img" --out "$dir/s3big.json"
    rc=$?
    cat "$dir/s3big.log"
    curl -fs -m 10 "$url/metrics" >"$dir/storaged-metrics.txt" 2>/dev/null
    alive "$pid" || { S3BIG_ERR="storaged died during the runs"; rc=1; }
    stop "$pid" 30
    rm -f "$site/store.img" # gigabytes of written blocks; the log stays for tail_logs
    if [ $rc -ne 0 ]; then
        S3BIG_ERR=${S3BIG_ERR:-$(grep -m1 'FAILED' "$dir/s3big.log" | sed 's/^s3big: FAILED: //')}
        S3BIG_ERR=${S3BIG_ERR:-"s3big.py failed (status $rc)"}
        tail_logs "$site"
        return 1
    fi
}

# --- two sites: A ships to B ---------------------------------------------------------------------------------------
# two_sites NAME SIZE: configs in $WORK/NAME/{a,b}, starts both storaged; sets A_DIR B_DIR A_URL B_URL A_PID B_PID
two_sites() { # two_sites NAME SIZE [TARGETS]: with TARGETS=2, a third site C and A ships to B and C (C_*)
    local base=$WORK/$1 size=$2 pa pb pc
    C_DIR="" C_URL="" C_PID=""
    pa=$(free_port) && pb=$(free_port) || return 1
    A_DIR=$base/a B_DIR=$base/b
    if [ "${3:-1}" = 2 ]; then
        pc=$(free_port) || return 1
        C_DIR=$base/c C_URL=http://127.0.0.1:$pc
        site_config "$A_DIR" site-a "$pa" "$size" fanout "$pb,$pc"
        site_config "$C_DIR" site-c "$pc" "$size" replica
        mkdir -p "$RES/configs/$1"
        cp "$C_DIR/config.yaml" "$RES/configs/$1/site-c.yaml"
        start_storaged "$C_DIR" || return 1
        C_PID=$LAST
        cmd "$BIN_SHOW/storaged --config $C_DIR/config.yaml   # site C: accept_token_file, image $size"
    else
        site_config "$A_DIR" site-a "$pa" "$size" primary "$pb"
    fi
    site_config "$B_DIR" site-b "$pb" "$size" replica
    A_URL=http://127.0.0.1:$pa B_URL=http://127.0.0.1:$pb
    mkdir -p "$RES/configs/$1"
    cp "$A_DIR/config.yaml" "$RES/configs/$1/site-a.yaml"
    cp "$B_DIR/config.yaml" "$RES/configs/$1/site-b.yaml"
    start_storaged "$B_DIR" || { [ -n "$C_PID" ] && stop "$C_PID"; return 1; }
    B_PID=$LAST
    start_storaged "$A_DIR" || { stop "$B_PID"; [ -n "$C_PID" ] && stop "$C_PID"; return 1; }
    A_PID=$LAST
    cmd "$BIN_SHOW/storaged --config $A_DIR/config.yaml   # site A: replication.enabled, remote_url $B_URL, image $size"
    cmd "$BIN_SHOW/storaged --config $B_DIR/config.yaml   # site B: accept_token_file, image $size"
}
stop_sites() { # stop_sites [REPLD_PID]
    [ -n "${1:-}" ] && stop "$1" 30
    stop "$A_PID" 30
    stop "$B_PID" 30
    [ -n "${C_PID:-}" ] && stop "$C_PID" 30
    C_PID=""
}

cpu_of() { # cpu_of PID: its CPU ticks (user + system, all threads) so far; empty without a PID
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] && sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
cpu_delta() { # cpu_delta PID TICKS0: CPU seconds since cpu_of gave TICKS0
    local now
    now=$(cpu_of "$1")
    [ -n "$now" ] && [ -n "$2" ] && awk -v a="$2" -v b="$now" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }'
}

# --- phase: drain ------------------------------------------------------------------------------------------------
phase_drain() { # phase_drain N [ROUND] [TARGETS] [CAP]: round 2 and later go to drain-N-rROUND; TARGETS=2: drain2-N,
    #              A to B and C; CAP=1: fanoutTARGETS-N, every site's processes capped at a third of the CPUs
    local n=$1 ntg=${3:-1} cap=${4:-0} name=drain-$1${2:+-r$2} share="" cga=""
    [ "$ntg" = 2 ] && name=drain2-$1
    [ "$cap" = 1 ] && name=fanout$ntg-$1 && share=$(awk -v c="$(nproc)" 'BEGIN { printf "%.2f", c / 3 }')
    local dir=$RES/$name
    mkdir -p "$dir"
    if [ "$cap" = 1 ]; then
        log "== $name: $n PUTs of 4 KiB queued on A with repld stopped, then repld started, shipping to $ntg target(s); each site capped at $share CPUs; time to 0 pending on each"
    elif [ "$ntg" = 2 ]; then
        log "== $name: $n PUTs of 4 KiB queued on A with repld stopped, then repld started, shipping to B and C; time to 0 pending on each"
    else
        log "== drain-$n${2:+ (round $2)}: $n PUTs of 4 KiB queued on A with repld stopped, then repld started; time to 0 pending"
    fi
    # each site holds n objects of 4 KiB (one 4 KiB extent each): room for them plus a margin
    local mib=$(((n * 4096 * 13 / 10) / 1048576 + 512))
    local room=$(((ntg + 1) * (n * 4096 + n * 600) / 1048576 + 1024))
    if [ "$(mib_free)" -lt "$room" ]; then
        DRAIN_ERR="needs about $room MiB free in $WORK, has $(mib_free) MiB"
        return 1
    fi
    two_sites "$name" "${mib}MiB" "$ntg" || { DRAIN_ERR="a site did not start"; return 1; }
    first_sync "$A_DIR" || { DRAIN_ERR="repld's first (empty) full sync did not finish"; stop_sites; return 1; }
    cmd "$BIN_SHOW/repld --config $A_DIR/config.yaml   # once, on the empty sites, until each target's first full sync is done; then stopped"
    start_rss "$dir/rss.csv" "storaged-a=$A_PID" "storaged-b=$B_PID"
    local rs=$LAST
    local fill_to=$((n / 500 + 120))
    cmd "python3 tests/bench/fill.py --url $A_URL --bucket drain --count $n --size $SIZE --conns $CONNS"
    if ! run_fg fill "$dir/fill.log" "$PY" "$HERE/fill.py" --url "$A_URL" --bucket drain --count "$n" --size $SIZE \
        --conns $CONNS --timeout $fill_to --out "$dir/fill.json"; then
        cat "$dir/fill.log"
        DRAIN_ERR="filling A failed: $(tail -1 "$dir/fill.log")"
        stop "$rs" 5
        stop_sites
        return 1
    fi
    cat "$dir/fill.log"
    local drain_to=${COMIO_BENCH_DRAIN_TIMEOUT:-$((n / 2000 + 120))}
    local also=()
    [ -n "$C_URL" ] && also=(--c "$C_URL")
    spawn drain-watcher "$dir/drain.log" "$PY" "$HERE/drain.py" --a "$A_URL" --b "$B_URL" "${also[@]}" --bucket drain \
        --expect "$n" --ready-file "$dir/ready" --t0-file "$dir/t0" --pid-file "$dir/repld.pid" --csv "$dir/drain.csv" \
        --out "$dir/drain.json" --timeout "$drain_to"
    local wpid=$LAST i
    cmd "python3 tests/bench/drain.py --a $A_URL --b $B_URL ${also[*]} --bucket drain --expect $n --csv drain.csv ...   # watches A's status from before repld starts"
    for ((i = 0; i < 300; i++)); do
        [ -e "$dir/ready" ] && break
        alive $wpid || break
        sleep 0.1
    done
    if [ ! -e "$dir/ready" ]; then
        wait $wpid 2>/dev/null
        unset "LIVE[$wpid]"
        DRAIN_ERR="the watcher did not get ready: $(tail -1 "$dir/drain.log")"
        stop "$rs" 5
        stop_sites
        return 1
    fi
    if [ "$cap" = 1 ]; then # the cap starts with the drain: the backlog was filled at full speed
        local site pid
        for site in a b c; do
            case $site in a) pid=$A_PID ;; b) pid=$B_PID ;; c) pid=${C_PID:-} ;; esac
            [ -n "$pid" ] || continue
            cg_make "$name-$site" "$share" && cg_join "$LAST" "$pid" || {
                DRAIN_ERR="could not cap site $site's CPU ($CG_KIND cgroup under $CG_BASE)"
                stop "$wpid" 5
                stop "$rs" 5
                stop_sites
                cg_cleanup
                return 1
            }
            [ $site = a ] && cga=$LAST
        done
        echo "$share" >"$dir/cpu-share"
        cmd "# each site's storaged (and A's repld) in a cgroup of its own, capped at $share CPUs ($CG_KIND, period ${CG_PERIOD_US} us)"
    fi
    local cpu0_a cpu0_b cpu0_c
    cpu0_a=$(cpu_of "$A_PID") cpu0_b=$(cpu_of "$B_PID") cpu0_c=$(cpu_of "${C_PID:-}")
    date +%s.%N >"$dir/t0"
    start_repld "$A_DIR" "$cga"
    local rpid=$LAST
    echo "$rpid" >"$dir/repld.pid"
    cmd "$BIN_SHOW/repld --config $A_DIR/config.yaml   # started once the backlog is in place (default replication settings)"
    wait $wpid
    local wrc=$?
    unset "LIVE[$wpid]"
    { # each storaged's CPU seconds from repld's start to the end of the drain (and a poll): what bounds the rate
        echo "storaged-a $(cpu_delta "$A_PID" "$cpu0_a")"
        echo "storaged-b $(cpu_delta "$B_PID" "$cpu0_b")"
        [ -n "${C_PID:-}" ] && echo "storaged-c $(cpu_delta "$C_PID" "$cpu0_c")"
    } >"$dir/cpu.txt"
    cat "$dir/drain.log"
    timeout -k 1 5 "$BIN/repld" --config "$A_DIR/config.yaml" --status >"$dir/repld-status.json" 2>&1
    curl -fs -m 10 "$A_URL/admin/replication/status" >"$dir/a-status.json" 2>/dev/null
    curl -fs -m 10 "$B_URL/metrics" >"$dir/b-metrics.txt" 2>/dev/null
    stop "$rs" 5
    alive "$rpid" || { log "   repld exited during the drain"; wrc=1; }
    stop_sites "$rpid"
    cg_cleanup
    if [ $wrc -ne 0 ]; then
        DRAIN_ERR=$(grep -m1 'FAILED' "$dir/drain.log" | sed 's/^drain: FAILED: //')
        DRAIN_ERR=${DRAIN_ERR:-"the drain watcher failed"}$(repld_hint "$dir/repld-status.json")
        tail_logs "$A_DIR" "$B_DIR"
        return 1
    fi
    return 0
}

# --- phase: fullsync -----------------------------------------------------------------------------------------------
FULLSYNC_N=100000
FULLSYNC_SMALL=1000
FULLSYNC_BIG=2048 # objects of 1 MiB: 2 GiB
phase_fullsync() {
    local dir=$RES/fullsync
    mkdir -p "$dir"
    log "== fullsync: B wiped and rebuilt from A against the drain of the same objects: $FULLSYNC_N and $FULLSYNC_SMALL of 4 KiB, $FULLSYNC_BIG of 1 MiB; a resync of identical sites"
    local room=$((FULLSYNC_N * 4096 * 3 / 1048576 + FULLSYNC_BIG * 4 + 2048))
    if [ "$(mib_free)" -lt "$room" ]; then
        FULLSYNC_ERR="needs about $room MiB free in $WORK, has $(mib_free) MiB"
        return 1
    fi
    cmd "python3 tests/bench/fullsync.py --bin $BIN_SHOW --work ... --count $FULLSYNC_N --small $FULLSYNC_SMALL --big-count $FULLSYNC_BIG   # default replication settings"
    run_sites_helper fullsync FULLSYNC_ERR fullsync.py --count $FULLSYNC_N --small $FULLSYNC_SMALL --big-count $FULLSYNC_BIG
}

# run_sites_helper PHASE ERRVAR SCRIPT [ARGS...]: runs tests/bench/SCRIPT, a helper that starts its own sites under
# $WORK/PHASE (--bin, --work, --token-file, --out $RES/PHASE/PHASE.json), prints its log, and on failure sets ERRVAR
# to its first FAILED line; removes its sites unless --keep
run_sites_helper() {
    local phase=$1 errvar=$2 script=$3 dir=$RES/$1
    shift 3
    if ! run_fg "$phase" "$dir/$phase.log" "$PY" "$HERE/$script" --bin "$BIN" --work "$WORK/$phase" \
        --token-file "$WORK/token" --out "$dir/$phase.json" "$@"; then
        cat "$dir/$phase.log"
        local err
        err=$(grep -m1 'FAILED' "$dir/$phase.log" | sed 's/^ *//')
        printf -v "$errvar" '%s' "${err:-"$script failed"}"
        return 1
    fi
    cat "$dir/$phase.log"
    [ "$KEEP" = 1 ] || rm -rf "${WORK:?}/$phase"
    return 0
}

# --- phase: lag ----------------------------------------------------------------------------------------------------
# lag_sites NAME SIZE: two sites and repld, all running and connected; sets R_PID
lag_sites() {
    two_sites "$1" "$2" || return 1
    start_repld "$A_DIR"
    R_PID=$LAST
    cmd "$BIN_SHOW/repld --config $A_DIR/config.yaml   # default replication settings"
    wait_repld "$A_DIR" "$R_PID" || { stop_sites "$R_PID"; return 1; }
}
phase_lag() {
    local dir=$RES/lag
    mkdir -p "$dir"
    log "== lag: $LAG_COUNT single 4 KiB PUTs at $LAG_RATE/s, each from A's 200 to B's 200 (default config)"
    lag_sites lag 1GB || { LAG_ERR="the sites did not start"; return 1; }
    start_rss "$dir/rss.csv" "storaged-a=$A_PID" "storaged-b=$B_PID" "repld=$R_PID"
    local rs=$LAST rc
    cmd "python3 tests/bench/lag.py small --a $A_URL --b $B_URL --count $LAG_COUNT --rate $LAG_RATE --size $SIZE"
    run_fg lag "$dir/lag.log" timeout -k 5 $((LAG_COUNT / LAG_RATE + 120)) "$PY" "$HERE/lag.py" small --a "$A_URL" \
        --b "$B_URL" --count $LAG_COUNT --rate $LAG_RATE --size $SIZE --out "$dir/lag.json"
    rc=$?
    cat "$dir/lag.log"
    timeout -k 1 5 "$BIN/repld" --config "$A_DIR/config.yaml" --status >"$dir/repld-status.json" 2>&1
    stop "$rs" 5
    alive "$R_PID" || { log "   repld exited during the run"; rc=1; }
    stop_sites "$R_PID"
    if [ $rc -ne 0 ]; then
        LAG_ERR=$(grep -m1 'FAILED' "$dir/lag.log" | sed 's/^lag small: FAILED: //')
        LAG_ERR=${LAG_ERR:-"lag.py failed (status $rc)"}$(repld_hint "$dir/repld-status.json")
        tail_logs "$A_DIR" "$B_DIR"
        return 1
    fi
}
# --- phase: sync ------------------------------------------------------------------------------------------------
# The python3 that can import the test harness (tests/harness imports pytest), in HARNESS_PY; 1 if none.
harness_python() {
    local py
    HARNESS_PY=""
    for py in "$PY" /usr/bin/python3; do
        "$py" -c 'import pytest' 2>/dev/null && { HARNESS_PY=$py; return 0; }
    done
    return 1
}
phase_sync() {
    local dir=$RES/sync py
    mkdir -p "$dir"
    # syncbench.py starts the sites with the test harness
    harness_python || { SYNC_ERR="needs a python3 with pytest (Debian: python3-pytest)"; return 1; }
    py=$HARNESS_PY
    log "== sync: async then sync mode, one target: wrk -t$THREADS -c$CONNS 4 KiB PUTs for ${DURATION}s; lone PUTs on loopback and over a 50 ms RTT"
    cmd "python3 tests/bench/syncbench.py --duration $DURATION --conns $CONNS --threads $THREADS --out sync.json"
    COMIO_BIN_DIR=$BIN TMPDIR=$WORK run_fg sync "$dir/sync.log" timeout -k 5 $((2 * DURATION + 600)) "$py" "$HERE/syncbench.py" \
        --duration "$DURATION" --conns "$CONNS" --threads "$THREADS" --wrk-script "$HERE/put.lua" --out "$dir/sync.json"
    local rc=$?
    cat "$dir/sync.log"
    [ $rc -eq 0 ] || { SYNC_ERR="syncbench.py failed (status $rc)"; return 1; }
}
phase_big() {
    local dir=$RES/big
    mkdir -p "$dir"
    log "== big: $BIG_REPEAT objects of $((BIG_SIZE >> 20)) MiB, each from A's 200 to B's HEAD with the right ETag"
    lag_sites big 2GB || { BIG_ERR="the sites did not start"; return 1; }
    start_rss "$dir/rss.csv" "storaged-a=$A_PID" "storaged-b=$B_PID" "repld=$R_PID"
    local rs=$LAST rc
    cmd "python3 tests/bench/lag.py big --a $A_URL --b $B_URL --size $BIG_SIZE --repeat $BIG_REPEAT"
    run_fg big "$dir/big.log" timeout -k 5 $((BIG_REPEAT * 90 + 60)) "$PY" "$HERE/lag.py" big --a "$A_URL" \
        --b "$B_URL" --size $BIG_SIZE --repeat $BIG_REPEAT --timeout 60 --out "$dir/big.json"
    rc=$?
    cat "$dir/big.log"
    timeout -k 1 5 "$BIN/repld" --config "$A_DIR/config.yaml" --status >"$dir/repld-status.json" 2>&1
    stop "$rs" 5
    alive "$R_PID" || { log "   repld exited during the run"; rc=1; }
    stop_sites "$R_PID"
    if [ $rc -ne 0 ]; then
        BIG_ERR=$(grep -m1 'FAILED' "$dir/big.log" | sed 's/^lag big: FAILED: //')
        BIG_ERR=${BIG_ERR:-"lag.py failed (status $rc)"}$(repld_hint "$dir/repld-status.json")
        tail_logs "$A_DIR" "$B_DIR"
        return 1
    fi
}

# --- the machine -------------------------------------------------------------------------------------------------
phase_wan() {
    local dir=$RES/wan
    mkdir -p "$dir"
    log "== wan: drain, a 1 GiB object, the bandwidth limit and compression through the test link (50 ms round trip)"
    # wan.py starts the sites with the test harness
    harness_python || { WAN_ERR="needs a python3 with pytest (Debian: python3-pytest)"; return 1; }
    cmd "python3 tests/bench/wan.py --out wan.json   # sites and relays of its own, on free loopback ports"
    COMIO_BIN_DIR=$BIN run_fg wan "$dir/wan.log" timeout -k 5 1500 "$HARNESS_PY" "$HERE/wan.py" --work "$WORK/wan" --out "$dir/wan.json"
    local rc=$?
    rm -rf "$WORK/wan"
    if [ $rc -ne 0 ]; then
        WAN_ERR=$(grep -m1 'FAILED' "$dir/wan.log" | sed 's/^wan //')
        WAN_ERR=${WAN_ERR:-"wan.py failed (status $rc)"}
        return 1
    fi
}

machine_info() {
    local f=$RES/machine.txt dev fs
    read -r dev fs < <(findmnt -no SOURCE,FSTYPE -T "$WORK" 2>/dev/null || df -PT "$WORK" | awk 'NR==2{print $1, $2}')
    local rota="?" blk
    blk=$(basename "$(readlink -f "$dev" 2>/dev/null || echo "$dev")")
    [ -r "/sys/class/block/$blk/queue/rotational" ] && rota=$(cat "/sys/class/block/$blk/queue/rotational")
    local sync_ms
    sync_ms=$("$PY" - "$WORK" <<'EOF'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
buf = os.urandom(4096)
ts = []
for i in range(200):
    os.pwrite(fd, buf, (i % 16) * 4096)
    t = time.perf_counter(); os.fdatasync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
ts.sort()
print("%.3f ms median, %.3f ms p99" % (ts[100] * 1e3, ts[197] * 1e3))
EOF
)
    local gitrev
    gitrev=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "?")
    if [ -n "$(cd "$ROOT" && git --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null | head -1)" ]; then
        gitrev="$gitrev plus uncommitted changes"
    fi
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), nproc $(nproc)"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
        echo "kernel: $(uname -srm)"
        echo "OS: $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
        echo "disk: $dev ($fs), rotational=$rota; fdatasync of a 4 KiB write: $sync_ms (work directory $(dirname "$WORK"))"
        echo "software: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $(gnuplot --version 2>/dev/null), Python $("$PY" -c 'import platform; print(platform.python_version())')"
        echo "ComIO: commit $gitrev; $BUILD_NOTE; build type $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$ROOT/build/CMakeCache.txt" 2>/dev/null | sed 's/^$/RelWithDebInfo (default)/')"
        echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    } >"$f"
}

# --- run ------------------------------------------------------------------------------------------------------------
log "== ComIO benchmark: phases $PHASES; work directory $WORK; time limit ${TOTAL_TIMEOUT}s"
cmd "$ARGV_STR"
machine_info
sed 's/^/   /' "$RES/machine.txt"
FAILED=0
run_phase() { # run_phase NAME FUNCTION ERRVAR [ARGS...]
    local name=$1 fn=$2 errvar=$3
    shift 3
    printf -v "$errvar" '%s' ""
    local t mark
    t=$(date +%s)
    mark=$(cpu_mark)
    if "$fn" "$@"; then
        foreign_cpu "$name" "$mark"
        phase_result "$name" ok
        log "   $name: ok ($(($(date +%s) - t)) s)"
    else
        foreign_cpu "$name" "$mark"
        local msg=${!errvar:-"see the output above"}
        phase_result "$name" failed "$msg"
        log "== $name: FAILED: $msg"
        FAILED=1
    fi
}
want http && run_phase http phase_http HTTP_ERR
want s3 && run_phase s3 phase_s3 S3_ERR
want s3big && run_phase s3big phase_s3big S3BIG_ERR
# --- phase: scrub --------------------------------------------------------------------------------------------------
SCRUB_BIG=2048 # objects of 1 MiB: 2 GiB
SCRUB_SMALL=20000
phase_scrub() {
    local dir=$RES/scrub
    mkdir -p "$dir"
    log "== scrub: one pass over $SCRUB_BIG objects of 1 MiB and $SCRUB_SMALL of 4 KiB, unpaced, against a sequential read of the image; 10 s at the default scrub_rate"
    local room=$((SCRUB_BIG * 2 + SCRUB_SMALL / 8 + 512))
    if [ "$(mib_free)" -lt "$room" ]; then
        SCRUB_ERR="needs about $room MiB free in $WORK, has $(mib_free) MiB"
        return 1
    fi
    cmd "python3 tests/bench/scrubbench.py --bin $BIN_SHOW --work ... --big-count $SCRUB_BIG --small-count $SCRUB_SMALL --paced-seconds 10"
    run_sites_helper scrub SCRUB_ERR scrubbench.py --big-count $SCRUB_BIG --small-count $SCRUB_SMALL --paced-seconds 10
}
want cksum && run_phase cksum phase_cksum CKSUM_ERR
if want drain; then
    run_phase drain-$DRAIN_SMALL phase_drain DRAIN_ERR $DRAIN_SMALL
    for ((r = 2; r <= ROUNDS; r++)); do run_phase drain-$DRAIN_SMALL-r$r phase_drain DRAIN_ERR $DRAIN_SMALL $r; done
fi
want drain2 && run_phase drain2-$DRAIN_SMALL phase_drain DRAIN_ERR $DRAIN_SMALL "" 2
if want fanout; then
    if cg_init; then
        run_phase fanout1-$FANOUT_N phase_drain DRAIN_ERR $FANOUT_N "" 1 1
        run_phase fanout2-$FANOUT_N phase_drain DRAIN_ERR $FANOUT_N "" 2 1
    else
        log "== fanout: skipped: $CG_ERR"
        phase_result fanout1-$FANOUT_N skipped "$CG_ERR"
        phase_result fanout2-$FANOUT_N skipped "$CG_ERR"
    fi
fi
want lag && run_phase lag phase_lag LAG_ERR
want big && run_phase big phase_big BIG_ERR
want sync && run_phase sync phase_sync SYNC_ERR
want wan && run_phase wan phase_wan WAN_ERR
want fullsync && run_phase fullsync phase_fullsync FULLSYNC_ERR
want scrub && run_phase scrub phase_scrub SCRUB_ERR
want drain-full && run_phase drain-$DRAIN_LARGE phase_drain DRAIN_ERR $DRAIN_LARGE

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"
echo "CPU used by other processes during each phase (% of the machine): ${FOREIGN_NOTE:-none measured}" >>"$RES/machine.txt"
echo "run time: $(($(date +%s) - T_START)) s" >>"$RES/machine.txt"
if [ -z "$PROVISIONAL" ] && [ "$FOREIGN_MAX" -ge 10 ]; then
    PROVISIONAL="Other processes used up to ${FOREIGN_MAX}% of the CPUs during a phase of this run, so the figures are noisy."
fi
echo "provisional: ${PROVISIONAL:-no}" >>"$RES/machine.txt"

log ""
log "== results"
report_args=(--results "$RES" --drain-small "$DRAIN_SMALL" --drain-large "$DRAIN_LARGE" --fanout "$FANOUT_N")
[ "$DOCS" = 1 ] && report_args+=(--docs "$ROOT/docs/benchmarks.md" --png "$ROOT/docs/bench-drain.png")
run_fg report "$RES/report.log" timeout -k 5 120 "$PY" "$HERE/report.py" "${report_args[@]}" || FAILED=1
cat "$RES/report.log"
[ -n "$PROVISIONAL" ] && log "" && log "NOTE: provisional: $PROVISIONAL"
KEEP_RES=${COMIO_BENCH_RESULTS:-${TMPDIR:-/var/tmp}/comio-bench-results}
if [ ! -e "$KEEP_RES" ] || [ -e "$KEEP_RES/phases.txt" ]; then # replace only an earlier run's results
    rm -rf "$KEEP_RES" && cp -r "$RES" "$KEEP_RES" && log "raw results: $KEEP_RES"
else
    log "raw results not copied: $KEEP_RES exists and is not an earlier run's results"
fi
exit $FAILED
