#!/usr/bin/env python3
"""syncbench.py - synchronous replication (mode: sync) against async mode, in one run.

  syncbench.py --wrk-script put.lua --out sync.json [--duration 10 --conns 64 --threads 2 --lone 200 --lone-wan 40]

For each mode (async, then sync, with one target and the defaults otherwise):
  - a fresh pair of sites A -> B on 127.0.0.1, wrk -tT -cC 4 KiB PUTs against A
    for DURATION seconds (the PUT rate);
  - LONE single 4 KiB PUTs one after the other on loopback: the latency of a
    lone PUT (median);
  - LONE_WAN single PUTs with every byte between the sites delayed 25 ms each
    way (the relay of tests/fault/test_latency.py): a lone PUT's latency across a
    50 ms round trip.
Every sync PUT must be answered X-Comio-Replication: COMPLETED. Writes the
figures to --out as JSON; exits non-zero when a run failed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "fault"))
from harness.comio import Client  # noqa: E402
from harness.replication import finish_sites, make_pair  # noqa: E402
from test_latency import DelayRelay  # noqa: E402

ONE_WAY_S = 0.025
BODY = os.urandom(4096)


def lone_puts(a, n, prefix, want_header):
    c = Client(a.host, a.port)
    lat = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            r = c.put("lone", "%s-%05d" % (prefix, i), BODY)
            lat.append(time.perf_counter() - t0)
            if r.status != 200 or r.header("X-Comio-Replication") != want_header:
                raise RuntimeError("PUT answered %d %r" % (r.status, r.header("X-Comio-Replication")))
    finally:
        c.close()
    return {"n": n, "p50_ms": round(statistics.median(lat) * 1e3, 3), "mean_ms": round(statistics.mean(lat) * 1e3, 3),
            "max_ms": round(max(lat) * 1e3, 3)}


def wrk(a, args):
    argv = ["wrk", "-t%d" % args.threads, "-c%d" % args.conns, "-d%ds" % args.duration, "--timeout", "10s", "-s",
            args.wrk_script, a.url(), "--", "50000", "4096", "/bench/put/"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 60)
    line = [x for x in p.stdout.splitlines() if x.startswith("WRKJSON ")]
    if p.returncode != 0 or not line:
        raise RuntimeError("wrk failed: %s" % (p.stdout + p.stderr)[-500:])
    w = json.loads(line[0][len("WRKJSON "):])
    return {"req_per_s": w["req_per_s"], "p50_ms": w["latency_us"]["p50"] / 1e3, "p99_ms": w["latency_us"]["p99"] / 1e3,
            "errors": sum(w["errors"].values()), "cmd": " ".join(argv)}


def run_mode(work, mode, args):
    out = {}
    repl = {"mode": mode, "workers": 5, "batch_size": 100}
    a, b = make_pair(os.path.join(work, mode), a_repl=repl, size="4GB")
    try:
        out["wrk"] = wrk(a, args)
        out["lone"] = lone_puts(a, args.lone, "loop-" + mode, "COMPLETED" if mode == "sync" else None)
        m = Client(a.host, a.port).metrics()
        if mode == "sync":
            out["pending"] = m.get("comio_replication_sync_writes_total", result="pending")
    finally:
        problems = finish_sites([a, b])
    a, b = make_pair(os.path.join(work, mode + "-wan"), a_repl=repl, start=False)
    relay = DelayRelay(b.port, ONE_WAY_S)
    try:
        a.repl["remote_url"] = relay.url
        a.write_config()
        b.start()
        a.start()
        lone_puts(a, 5, "warm-" + mode, "COMPLETED" if mode == "sync" else None)  # connections up
        out["lone_wan"] = lone_puts(a, args.lone_wan, "wan-" + mode, "COMPLETED" if mode == "sync" else None)
    finally:
        problems += finish_sites([a, b])
        relay.close()
    if problems:
        out["problems"] = problems
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wrk-script", default=os.path.join(HERE, "put.lua"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lone", type=int, default=200)
    ap.add_argument("--lone-wan", type=int, default=40)
    args = ap.parse_args()
    res = {"rtt_ms": ONE_WAY_S * 2e3, "conns": args.conns, "duration_s": args.duration}
    rc = 0
    with tempfile.TemporaryDirectory(prefix="comio-syncbench-", dir=os.environ.get("TMPDIR", "/var/tmp")) as work:
        for mode in ("async", "sync"):
            try:
                res[mode] = run_mode(work, mode, args)
            except Exception as e:  # noqa: BLE001 - reported in the results
                res[mode] = {"error": str(e)}
                rc = 1
            print("sync bench: %s: %s" % (mode, json.dumps(res[mode])), flush=True)
    if rc == 0:
        res["ratio"] = res["sync"]["wrk"]["req_per_s"] / res["async"]["wrk"]["req_per_s"]
        res["lone_wan_extra_ms"] = res["sync"]["lone_wan"]["p50_ms"] - res["async"]["lone_wan"]["p50_ms"]
        print("sync bench: sync/async PUT rate %.2f; lone PUT over %.0f ms RTT: sync %.1f ms, async %.1f ms" % (
            res["ratio"], res["rtt_ms"], res["sync"]["lone_wan"]["p50_ms"], res["async"]["lone_wan"]["p50_ms"]))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
