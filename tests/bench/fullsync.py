#!/usr/bin/env python3
"""fullsync.py - the full-sync phase of the benchmark: a full sync against the drain of the same objects.

  fullsync.py --bin DIR --work DIR --token-file F --out FILE.json [--count 100000] [--size 4096]
              [--small 1000] [--big-count 2048] [--big-size 1048576] [--timeout S]

For each case (COUNT objects of SIZE, SMALL objects of SIZE, BIG-COUNT objects of BIG-SIZE), on two fresh sites
A (ships to B, target `site-b`) and B, on 127.0.0.1 free ports:
  1. drain: repld runs once on the empty sites (its first full sync has nothing to do), is stopped, A is filled
     (fill.py, the backlog in A's log), repld is started: the time to 0 events pending is the drain;
  2. (big case) the same objects PUT straight to B, in another bucket: the rate at which B can write them;
  3. full sync: repld is restarted (a fresh process, for its RSS), B is wiped and started empty (a new store
     identity): A's repld finds it at its next idle probe and rebuilds B. Timed from the first status that shows
     the sync running to the first that shows it done (polled every 50 ms), and by the sync's own duration;
     repld's RSS sampled throughout; then `comio diff` must exit 0;
  4. (COUNT case) resync of the two identical sites: `repld --resync --target site-b`, timed to done.
Every process it starts is stopped by its pid on exit. Writes one JSON document to --out.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fill as fillmod  # noqa: E402
from benchlib import write_json  # noqa: E402

PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def log(msg):
    print(msg, flush=True)


class Site:
    def __init__(self, args, d, site_id, size, target=None):
        self.args, self.dir, self.id, self.size, self.target = args, d, site_id, size, target
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.storaged = self.repld = None
        os.makedirs(d, exist_ok=True)

    def write_config(self):
        lines = ["site:", "  id: %s" % self.id, "server:", "  listen: 127.0.0.1", "  port: %d" % self.port,
                 "  storage_path: %s/store.img" % self.dir, "  storage_size: %s" % self.size,
                 "  meta_path: %s/store.meta" % self.dir, "replication:", "  socket: %s/repld.sock" % self.dir,
                 "  accept_token_file: %s" % self.args.token_file]
        if self.target:
            lines += ["  enabled: true", "  targets:", "    - name: site-b", "      url: %s" % self.target.url,
                      "      token_file: %s" % self.args.token_file]
        lines += ["logging:", "  level: info", "  format: text"]
        with open(os.path.join(self.dir, "config.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def spawn(self, exe, name):
        logf = open(os.path.join(self.dir, name + ".log"), "ab")
        p = subprocess.Popen([os.path.join(self.args.bin, exe), "--config", os.path.join(self.dir, "config.yaml")],
                             stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()
        PROCS.append(p)
        return p

    def start_storaged(self):
        self.write_config()
        self.storaged = self.spawn("storaged", "storaged")
        wait(lambda: http_ok(self.url + "/admin/health"), 30, "storaged %s to answer" % self.id,
             alive=self.storaged)

    def start_repld(self):
        self.repld = self.spawn("repld", "repld")
        wait(lambda: self.status()["repld"] == "running", 30, "repld %s to run" % self.id, alive=self.repld)

    def stop(self, which):
        p = getattr(self, which)
        if p is not None:
            stop_proc(p)
            setattr(self, which, None)

    def wipe(self):
        for name in ("store.img", "store.meta"):
            p = os.path.join(self.dir, name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)

    def status(self):
        with urllib.request.urlopen(self.url + "/admin/replication/status", timeout=10) as r:
            return json.loads(r.read())

    def sync(self):
        return self.status()["targets"][0]["sync"]


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop_proc(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def wait(fn, timeout, what, interval=0.05, alive=None):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except OSError:
            v = None
        if v:
            return v
        if alive is not None and alive.poll() is not None:
            raise RuntimeError("%s: the process exited (%s)" % (what, alive.returncode))
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def rss_kib(p, field="VmRSS"):
    """The process's VmRSS (or RssAnon: its own memory, without the pages of LMDB's map it has read) in KiB."""
    try:
        with open("/proc/%d/status" % p.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_s(*procs):
    """CPU seconds (user + system, all threads) the processes used so far."""
    total = 0
    for p in procs:
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, AttributeError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def cpu_mark(a, b):
    return {"repld-a": cpu_s(a.repld), "storaged-a": cpu_s(a.storaged), "storaged-b": cpu_s(b.storaged)}


def cpu_since(mark, a, b):
    now = cpu_mark(a, b)
    return {k: round(now[k] - mark[k], 2) for k in mark}


def do_fill(url, bucket, count, size, conns, timeout):
    ns = argparse.Namespace(url=url, bucket=bucket, prefix="obj-", count=count, size=size, conns=conns,
                            timeout=timeout, progress=0)
    state, secs = asyncio.run(fillmod.fill(ns))
    if state["errors"]:
        raise RuntimeError("fill of %s failed: %s" % (url, "; ".join(state["errors"][:3])))
    return {"count": count, "size": size, "conns": conns, "seconds": round(secs, 3),
            "objects_per_s": round(count / secs, 1), "bytes_per_s": round(count * size / secs, 1)}


def one_case(args, name, count, size, direct=False, resync=False):
    base = os.path.join(args.work, name)
    room = "%dMiB" % (count * size * (26 if direct else 13) // 10 // 1048576 + 256)
    b = Site(args, os.path.join(base, "b"), "site-b", room)
    a = Site(args, os.path.join(base, "a"), "site-a", room, target=b)
    res = {"count": count, "size": size}
    conns = 64 if size < 65536 else 16
    try:
        b.start_storaged()
        a.start_storaged()
        a.start_repld()  # its first full sync finds nothing to ship
        wait(lambda: a.sync()["phase"] == "done", 30, "the first (empty) full sync")
        a.stop("repld")
        log("   %s: fill A with %d objects of %d B" % (name, count, size))
        res["fill_a"] = do_fill(a.url, "sync", count, size, conns, args.timeout)

        # 1. the drain of the same objects, from A's log
        t0 = time.monotonic()
        mark = cpu_mark(a, b)  # repld's share counts from 0: it is not running yet
        a.start_repld()
        wait(lambda: a.status()["events_pending"] == 0, args.timeout, "the drain", interval=0.02)
        secs = time.monotonic() - t0
        res["drain"] = {"seconds": round(secs, 3), "objects_per_s": round(count / secs, 1),
                        "bytes_per_s": round(count * size / secs, 1), "cpu_s": cpu_since(mark, a, b)}
        log("   %s: drain %.2f s, %.0f objects/s; CPU-s %r" % (name, secs, count / secs, res["drain"]["cpu_s"]))

        # 2. the rate at which B writes the same objects, PUT straight to it
        if direct:
            res["direct_b"] = do_fill(b.url, "direct", count, size, conns, args.timeout)
            log("   %s: PUT straight to B %.2f s, %.1f MiB/s" % (name, res["direct_b"]["seconds"],
                                                                res["direct_b"]["bytes_per_s"] / 1048576))

        # 3. the full sync: B loses its store, A rebuilds it
        a.stop("repld")
        a.start_repld()
        rss0, anon0 = rss_kib(a.repld), rss_kib(a.repld, "RssAnon")
        b.stop("storaged")
        b.wipe()
        b.start_storaged()
        peak = [rss0 or 0, anon0 or 0]

        def sample():
            peak[0] = max(peak[0], rss_kib(a.repld) or 0)
            peak[1] = max(peak[1], rss_kib(a.repld, "RssAnon") or 0)

        def started():
            s = a.sync()
            sample()
            return s["phase"] == "running" or (s["phase"] == "done" and s["reason"] == "store replaced")
        wait(started, 60, "the full sync to start (idle probe)", interval=0.02)
        t0 = time.monotonic()
        mark = cpu_mark(a, b)

        def done():
            s = a.sync()
            sample()
            return s if s["phase"] == "done" and s["reason"] == "store replaced" else None
        s = wait(done, args.timeout, "the full sync", interval=0.05)
        secs = time.monotonic() - t0
        res["fullsync"] = {"seconds": round(secs, 3), "objects_per_s": round(count / secs, 1),
                           "bytes_per_s": round(count * size / secs, 1), "sync": s,
                           "repld_rss_kib_start": rss0, "repld_rss_kib_peak": peak[0],
                           "repld_anon_kib_start": anon0, "repld_anon_kib_peak": peak[1],
                           "cpu_s": cpu_since(mark, a, b)}
        log("   %s: full sync %.2f s (its own duration %.2f s), %.0f objects/s, %.1f MiB/s; repld RSS %s -> %s KiB "
            "(anonymous %s -> %s KiB); CPU-s %r" % (name, secs, s["duration_seconds"], count / secs,
                                                   count * size / secs / 1048576, rss0, peak[0], anon0, peak[1],
                                                   res["fullsync"]["cpu_s"]))
        p = subprocess.run([os.path.join(args.bin, "comio"), "diff", "--source", a.url, "--target", b.url,
                            "--quiet", "--bucket", "sync"], timeout=600)
        res["diff_exit"] = p.returncode
        if p.returncode != 0:
            raise RuntimeError("comio diff exited %d after the full sync" % p.returncode)

        # 4. a resync of the two identical sites
        if resync:
            # the sync before was the rebuild (reason "store replaced"): a done sync with reason "requested" is this
            # one, whatever its timestamps (ISO seconds: a resync of 0.02 s can start and end in the rebuild's second)
            t0 = time.monotonic()
            p = subprocess.run([os.path.join(args.bin, "repld"), "--config", os.path.join(a.dir, "config.yaml"),
                                "--resync", "--target", "site-b"], capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                raise RuntimeError("repld --resync exited %d: %s" % (p.returncode, p.stderr))
            s2 = wait(lambda: (lambda s: s if s["phase"] == "done" and s["reason"] == "requested" else None)(a.sync()),
                      args.timeout, "the resync")
            secs = time.monotonic() - t0
            res["resync"] = {"seconds": round(secs, 3), "sync": s2}
            log("   %s: resync of identical sites %.2f s (its own duration %.2f s; %d shipped, %d skipped)" %
                (name, secs, s2["duration_seconds"], s2["objects_shipped"], s2["objects_skipped"]))
    finally:
        for site in (a, b):
            site.stop("repld")
            site.stop("storaged")
    return res


def kill_all():
    """Kills every process spawned (Site.spawn) that is still running: the last resort of a helper's exit."""
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def site_args(doc):
    """An argument parser with the options every helper that starts its own sites takes (run.sh, run_sites_helper)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[1])
    for opt in ("--bin", "--work", "--token-file", "--out"):
        ap.add_argument(opt, required=True)
    return ap


def main():
    ap = site_args(__doc__)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--big-count", type=int, default=2048)
    ap.add_argument("--big-size", type=int, default=1048576)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()
    # SIGTERM (run.sh stopping the phase) unwinds like an exception, so that the finally below stops the daemons
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = {"cases": {}}
    rc = 0
    try:
        for name, count, size, direct, resync in (("small", args.small, args.size, False, False),
                                                  ("many", args.count, args.size, False, True),
                                                  ("big", args.big_count, args.big_size, True, False)):
            if count <= 0:
                continue
            try:
                out["cases"][name] = one_case(args, name, count, size, direct, resync)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                out["cases"][name] = {"count": count, "size": size, "error": str(e)}
                log("   %s: FAILED: %s" % (name, e))
                rc = 1
    finally:
        kill_all()
        write_json(args.out, out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
