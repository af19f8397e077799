"""wan.py - the WAN benchmark (issue 15): replication across the test link, tests/harness/relay.py.

Each measure starts two fresh sites on loopback (the test harness's Site,
binaries from $COMIO_BIN_DIR or bin/) and relays, as processes of their own, for
every byte between them: A's batches to B, and B's fetches of large objects
from A (A's public_url points at the second relay). Figures, side by side:

  drain        10,000 4 KiB PUTs queued on A, then repld started: events/s on
               plain loopback, and over the 50 ms relay (25 ms each way);
  big          one object of --big-mib (default 1024) over the 50 ms relay capped
               at 200 Mbit/s: Mbit/s of object bytes, from repld's start to B
               holding it, against the cap;
  limit        bandwidth_limit 100Mbit, 8 workers, a backlog of small PUTs and
               256 KiB objects (fetched) over the 50 ms relay, uncapped: the rate
               the relays carried from A to B, by their own counts and clocks;
  compression  a backlog of text-like objects (log lines) and one of random
               bytes over a 100 Mbit/s 50 ms relay, compression none and zstd:
               object bytes replicated per second.

Writes one JSON document (--out) and prints one line per figure. Every
process it starts is stopped on the way out; every wait is bounded.

  python3 tests/bench/wan.py [--out wan.json] [--work DIR] [--only drain,big,limit,compression]
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness.replication import make_pair, finish_sites  # noqa: E402
from harness.measure import wait_drained  # noqa: E402

RELAY = HERE.parent / "harness" / "relay.py"
ONE_WAY_MS = 25
DRAIN_EVENTS = 10000
EVENT_BYTES = 4096
LARGE = 256 * 1024


class RelayProc:
    """relay.py as a process: its own interpreter, so the link is never slowed by the benchmark's Python."""

    def __init__(self, target_port, delay_ms=0, rate="0", reverse_target=0):
        self.p = subprocess.Popen([sys.executable, str(RELAY), "--target", str(target_port), "--delay-ms", str(delay_ms),
                                   "--rate", str(rate), "--reverse-target", str(reverse_target)],
                                  stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline())
        self.url = "http://127.0.0.1:%d" % self.port
        self.reverse_url = "http://127.0.0.1:%d" % int(self.p.stdout.readline()) if reverse_target else None

    def stop(self):
        """Stops it; returns its counters (relay.py's JSON line)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            out, _ = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        lines = [x for x in out.splitlines() if x.startswith("{")]
        return json.loads(lines[-1]) if lines else {}


class Pair:
    """Sites A -> B, optionally through one relay process: A's batches to B, and B's fetches from A the
    other way round on the same link (one bottleneck each way)."""

    def __init__(self, work, name, delay_ms=None, rate="0", a_repl=None, size_mb=1024):
        self.dir = Path(work) / name
        shutil.rmtree(self.dir, ignore_errors=True)
        big = {"server": {"max_object_size": "2GiB"}}
        repl = {"workers": 5, "batch_size": 100, "inline_threshold": "64KB"}
        repl.update(a_repl or {})
        self.a, self.b = make_pair(self.dir, start=False, a_repl=repl, size="%dMB" % size_mb, a_extra=json.loads(json.dumps(big)),
                                   b_extra=json.loads(json.dumps(big)))
        self.link = None
        if delay_ms is not None:
            self.link = RelayProc(self.b.port, delay_ms, rate, reverse_target=self.a.port)
            self.a.repl["remote_url"] = self.link.url
            self.a.extra["server"]["public_url"] = self.link.reverse_url
            self.a.write_config()
        self.b.start()
        self.a.start()

    def backlog(self, bodies, bucket, threads=8):
        """PUTs bodies[i] as key i on A with repld stopped; returns the object bytes."""
        self.a.stop_repld()
        clients = [self.a.client(timeout=900) for _ in range(threads)]

        def put(t):
            for i in range(t, len(bodies), threads):
                r = clients[t].put(bucket, "k%06d" % i, bodies[i])
                assert r.status == 200, r

        with concurrent.futures.ThreadPoolExecutor(threads) as ex:
            list(ex.map(put, range(threads)))
        return sum(len(b) for b in bodies)

    def drain(self, timeout=1200):
        t0 = time.monotonic()
        self.a.start_repld()
        wait_drained(self.a, timeout)
        return time.monotonic() - t0

    def close(self):
        stats = {}
        if self.link is not None:
            st = self.link.stop()
            stats = {"to_b": st.get("relay", {}), "to_a": st.get("reverse", {})}
        finish_sites([self.a, self.b])
        return stats


def text_body(i, size, rng):
    words = ["GET", "PUT", "/api/v1/items", "200", "404", "user=", "latency_ms=", "ok", "error", '{"id":', '"status":']
    out, n = [], 0
    while n < size:
        line = "2026-12-02T07:%02d:%02d.%03dZ %s %d\n" % (rng.randrange(60), rng.randrange(60), rng.randrange(1000),
                                                          " ".join(rng.choice(words) for _ in range(8)), rng.randrange(10 ** 6))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def measure_drain(work, res):
    rng = random.Random(10000)
    bodies = [rng.randbytes(EVENT_BYTES) for _ in range(DRAIN_EVENTS)]
    for name, delay in (("loopback", None), ("rtt50", ONE_WAY_MS)):
        p = Pair(work, "drain-" + name, delay)
        try:
            p.backlog(bodies, "drain")
            s = p.drain()
        finally:
            p.close()
        res["drain_%s_events_per_s" % name] = round(DRAIN_EVENTS / s)
        print("wan drain %s: %d events in %.2f s, %d events/s" % (name, DRAIN_EVENTS, s, DRAIN_EVENTS / s), flush=True)
    res["drain_rtt50_over_loopback"] = round(res["drain_rtt50_events_per_s"] / res["drain_loopback_events_per_s"], 3)


def measure_big(work, res, mib):
    p = Pair(work, "big", ONE_WAY_MS, "200Mbit", size_mb=mib * 2 + 256)
    try:
        p.backlog([os.urandom(1 << 20) * mib], "big", threads=1)
        s = p.drain()
    finally:
        st = p.close()
    mbit = mib * (1 << 20) * 8 / 1e6 / s
    res.update(big_mib=mib, big_seconds=round(s, 2), big_mbit=round(mbit, 1), big_of_cap=round(mbit / 200, 3),
               big_relay_bytes=st.get("to_a", {}).get("bytes_from_target"))
    print("wan big: %d MiB over 50 ms capped at 200 Mbit/s in %.1f s: %.1f Mbit/s (%.0f%% of the cap)"
          % (mib, s, mbit, 100 * mbit / 200), flush=True)


def measure_limit(work, res):
    rng = random.Random(100)
    bodies = []
    total = 0
    while total < 80_000_000:
        size = LARGE if len(bodies) % 4 == 0 else rng.randrange(2048, 16384)
        bodies.append(rng.randbytes(size))
        total += size
    p = Pair(work, "limit", ONE_WAY_MS, "0", a_repl={"workers": 8, "bandwidth_limit": "100Mbit"})
    try:
        p.backlog(bodies, "limit")
        p.drain()
    finally:
        st = p.close()
    b, a = st["to_b"], st["to_a"]
    span = max(b["last_byte_at"], a["last_byte_at"]) - min(b["first_byte_at"], a["first_byte_at"])
    rate = (b["bytes_to_target"] + a["bytes_from_target"]) / span
    res.update(limit_mbit=100, limit_measured_mbit=round(rate * 8 / 1e6, 2),
               limit_error=round(abs(rate * 8 / 1e6 - 100) / 100, 4), limit_batch_bytes=b["bytes_to_target"],
               limit_fetch_bytes=a["bytes_from_target"])
    print("wan limit: 100 Mbit/s asked, %.2f Mbit/s carried by the link (batches %d B, fetches %d B)"
          % (rate * 8 / 1e6, b["bytes_to_target"], a["bytes_from_target"]), flush=True)


def measure_compression(work, res):
    rng = random.Random(3)
    kinds = {
        "text": [text_body(i, LARGE if i % 8 == 0 else rng.randrange(4096, 32768), rng) for i in range(1200)],
        "random": [rng.randbytes(LARGE if i % 8 == 0 else rng.randrange(4096, 32768)) for i in range(1200)],
    }
    for kind, bodies in kinds.items():
        for comp in ("none", "zstd"):
            p = Pair(work, "comp-%s-%s" % (kind, comp), ONE_WAY_MS, "100Mbit", a_repl={"compression": comp})
            try:
                nbytes = p.backlog(bodies, "comp")
                s = p.drain()
            finally:
                p.close()
            res["comp_%s_%s_mbyte_per_s" % (kind, comp)] = round(nbytes / s / 1e6, 2)
            print("wan compression %s %s: %.1f MB of objects in %.2f s, %.2f MB/s" % (kind, comp, nbytes / 1e6, s, nbytes / s / 1e6),
                  flush=True)
        res["comp_%s_gain" % kind] = round(res["comp_%s_zstd_mbyte_per_s" % kind] / res["comp_%s_none_mbyte_per_s" % kind], 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out")
    ap.add_argument("--work")
    ap.add_argument("--only", default="drain,big,limit,compression")
    ap.add_argument("--big-mib", type=int, default=1024)
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="comio-wan-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    work.mkdir(parents=True, exist_ok=True)
    only = a.only.split(",")
    res, failed = {}, []
    steps = [("drain", lambda: measure_drain(work, res)), ("big", lambda: measure_big(work, res, a.big_mib)),
             ("limit", lambda: measure_limit(work, res)), ("compression", lambda: measure_compression(work, res))]
    for name, fn in steps:
        if name not in only:
            continue
        try:
            fn()
        except Exception as e:  # one failed measure is reported; the others still run
            failed.append("%s: %s" % (name, str(e).splitlines()[0] if str(e) else type(e).__name__))
            print("wan %s: FAILED: %s" % (name, e), flush=True)
    res["failed"] = failed
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
