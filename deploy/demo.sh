#!/usr/bin/env bash
# demo.sh - build ComIO and run two sites on loopback, with image files in a
# temporary directory: the seed's "Test Replication" steps (PUT on site A, read
# it on site B, a large object, DELETE, PURGE), then the replication status,
# `comio status` and `comio diff`. Installs the build dependencies when missing
# (Debian 12; needs root or sudo for that step only). With COMIO_BIN_DIR set it
# builds nothing and runs the binaries found there. Exits non-zero if a step
# does not do what it says.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

if [ -n "${COMIO_BIN_DIR:-}" ]; then
    # the binaries are given (the test suite runs the demo against the build under test)
    bin=$COMIO_BIN_DIR
    echo "== using the binaries in $bin"
else
    need=(build-essential cmake pkg-config libh2o-evloop-dev liblmdb-dev libmsgpack-dev libyaml-dev libzstd-dev libisal-dev
          libcurl4-openssl-dev libssl-dev libexpat1-dev curl)
    missing=()
    for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi

    echo "== building"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
    echo "   bin/storaged bin/repld bin/comio built"
    bin=$top/bin
fi

work=$(mktemp -d -t comio-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port below the kernel's ephemeral range (32768 and up), so
# that no outgoing connection or port-0 socket is handed it before storaged
# binds it: a random one of 20000-32767 that nothing listens on.
free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 12768))
        if python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo $((20000 + RANDOM % 12768))
}

start_site() { # name port config-extra
    local name=$1 port=$2
    cat >"$work/$name.yaml" <<YAML
site:
  id: $name
server:
  listen: 127.0.0.1
  port: $port
  storage_path: $work/$name.img
  storage_size: 256MB
logging:
  format: text
$3
YAML
    "$bin/comio" server --config "$work/$name.yaml" 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/admin/health" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "site $name did not start; its log:"; cat "$work/$name.log"; exit 1
}

port_a=$(free_port); port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
token=$(openssl rand -hex 32 2>/dev/null || echo demo-token-0123456789abcdef0123456789abcdef)
echo "== starting site-b on 127.0.0.1:$port_b (replica: accepts batches with the shared token)"
start_site site-b "$port_b" "replication:
  enabled: false
  accept_token: \"$token\"
  socket: $work/site-b.sock"
echo "== starting site-a on 127.0.0.1:$port_a (primary: storaged + repld shipping to site-b)"
start_site site-a "$port_a" "replication:
  enabled: true
  remote_url: http://127.0.0.1:$port_b
  remote_token: \"$token\"
  socket: $work/site-a.sock"

a="http://127.0.0.1:$port_a"
b="http://127.0.0.1:$port_b"

fail() {
    echo "demo FAILED: $*; the logs:"
    tail -n 20 "$work"/site-*.log
    exit 1
}

# polls until the command succeeds, at most ~5 s
eventually() {
    for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
    return 1
}

echo
echo "== the seed's \"Test Replication\" steps"
echo "-- Site A: upload file"
head -c 100000 /dev/urandom >"$work/file.dat"
curl -fsS -X PUT -H "Content-Type: application/octet-stream" --data-binary @"$work/file.dat" "$a/mybucket/myfile"; echo
t0=$(date +%s%N)
echo "-- Site B: verify presence (no need to wait 1-2 s: repld ships at once)"
if eventually curl -fs -o "$work/copy.dat" "$b/mybucket/myfile" && cmp -s "$work/file.dat" "$work/copy.dat"; then
    echo "   site-b has mybucket/myfile, byte for byte, after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
    echo "   site-b does not have it; repld log:"; cat "$work/site-a.log"; exit 1
fi
echo "-- a large object (2 MB, fetched by site-b from site-a with a presigned URL)"
head -c 2000000 /dev/urandom >"$work/big.dat"
curl -fsS -o /dev/null -X PUT --data-binary @"$work/big.dat" "$a/mybucket/big"
big_copied() { curl -fs -o "$work/big.copy" "$b/mybucket/big" && cmp -s "$work/big.dat" "$work/big.copy"; }
eventually big_copied || fail "site-b does not have mybucket/big"
echo "   site-b has mybucket/big, byte for byte"
b_gone() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$b/mybucket/myfile")" = 404 ]; }
b_empty() { curl -fs "$b/mybucket" | grep -q '"objects":\[\]'; }
echo "-- DELETE on site-a"
curl -fsS -o /dev/null -w "   DELETE -> %{http_code}\n" -X DELETE "$a/mybucket/myfile"
eventually b_gone || fail "site-b still has mybucket/myfile"
echo "   site-b answers 404 for mybucket/myfile"
echo "-- PURGE of mybucket on site-a"
curl -fsS -X DELETE "$a/admin/mybucket/objects?confirm=true"; echo
eventually b_empty || fail "mybucket on site-b is not empty"
echo "   mybucket on site-b is empty"

echo
echo "== replication status of site-a"
curl -fsS "$a/admin/replication/status"; echo
echo "== repld --status"
"$bin/repld" --config "$work/site-a.yaml" --status
echo "== comio status (readable; --json for scripts)"
"$bin/comio" status --url "$a"
echo "== comio diff: are the sites in sync?"
"$bin/comio" diff --source "$a" --target "$b" || fail "comio diff found differences"
echo "== done; stopping both sites"
