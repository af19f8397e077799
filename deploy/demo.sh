#!/usr/bin/env bash
# demo.sh - build ComIO and run two sites on loopback, with image files in a
# temporary directory: write an object to site A, read it back, show the
# replication log and the status. Installs the build dependencies when missing
# (Debian 12; needs root or sudo for that step only).
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"

need=(build-essential cmake pkg-config libh2o-evloop-dev liblmdb-dev libmsgpack-dev libyaml-dev
      libcurl4-openssl-dev libssl-dev curl)
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

work=$(mktemp -d -t comio-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
        echo $((20000 + RANDOM % 20000))
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
    ./bin/comio server --config "$work/$name.yaml" 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$port/admin/health" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "site $name did not start; its log:"; cat "$work/$name.log"; exit 1
}

port_a=$(free_port); port_b=$(free_port)
echo "== starting site-a on 127.0.0.1:$port_a (primary, replication log on)"
start_site site-a "$port_a" "replication:
  enabled: true
  remote_url: http://127.0.0.1:$port_b
  remote_token: demo-token"
echo "== starting site-b on 127.0.0.1:$port_b (replica)"
start_site site-b "$port_b" "replication:
  enabled: false
  accept_token: demo-token"

a="http://127.0.0.1:$port_a"
echo "== PUT $a/mybucket/hello.txt"
echo "Hello from ComIO" >"$work/hello.txt"
curl -fsS -X PUT -H "Content-Type: text/plain" --data-binary @"$work/hello.txt" "$a/mybucket/hello.txt"; echo
echo "== GET $a/mybucket/hello.txt"
curl -fsS "$a/mybucket/hello.txt"
echo "== listing of mybucket"
curl -fsS "$a/mybucket"; echo
echo "== DELETE, then GET answers 404"
curl -fsS -o /dev/null -w "DELETE -> %{http_code}\n" -X DELETE "$a/mybucket/hello.txt"
curl -sS -o /dev/null -w "GET    -> %{http_code}\n" "$a/mybucket/hello.txt"
echo "== replication status of site-a (two records in its durable log)"
curl -fsS "$a/admin/replication/status"; echo
echo
echo "Site A logged both mutations durably. Shipping them to site B (repld) is"
echo "the next milestone; until then site B stays empty:"
curl -fsS "http://127.0.0.1:$port_b/"; echo
echo "== done; stopping both sites"
