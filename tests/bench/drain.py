#!/usr/bin/env python3
"""drain.py - watch site A's replication backlog drain to site B.

Run it before repld starts: it connects to A, checks that the backlog is there
(EXPECT events pending), creates --ready-file, then polls
`GET A/admin/replication/status` every --interval seconds, writing one CSV row
per poll (wall time, events pending, events replicated, repld's VmRSS,
VmHWM, RssAnon and RssFile in KiB, and A's `lag_seconds`: the age of the
oldest event not yet on B) to --csv. run.sh writes the wall time at which it started repld into
--t0-file, and repld's pid into --pid-file. A thread also reads repld's
memory every --mem-interval seconds and keeps the peaks: a drain of 10,000
events lasts about 0.2 s, so the status polls alone would catch its peak only
by chance. The drain is
complete at the first poll that shows 0 events pending (`events_pending`, or
`log_pending` on a storaged that does not have the former) once repld has
started. Then B's object count is checked (`comio_objects` in B's /metrics,
and the listing of the bucket when it holds at most --list-max objects), and
A's `events_failed` must be 0.

With --c, A ships to two targets (B and C, replication.targets): the drain
is complete when every target has 0 events pending, each target's own drain
time is taken from the first poll that shows its `targets[].events_pending`
at 0, and C's object count is checked as B's.

The result (events, seconds from repld's start to the last pending event
acknowledged, events per second, repld's CPU seconds over the drain, checks)
goes to --out as JSON. Bounded by
--timeout seconds after repld starts; a drain that does not finish in time
is reported with the events still pending and the rate so far.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, HTTPError, write_json  # noqa: E402


def pending_of(st):
    if "events_pending" in st:
        return int(st["events_pending"]), "events_pending"
    return int(st["log_pending"]), "log_pending"


async def get_json(c, path):
    st, _, body = await c.request("GET", path)
    if st != 200:
        raise HTTPError("GET %s: status %d: %s" % (path, st, body[:200]))
    return json.loads(body)


async def metric(c, name):
    st, _, body = await c.request("GET", "/metrics")
    if st != 200:
        raise HTTPError("GET /metrics: status %d" % st)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def list_count(c, bucket, limit):
    n, after, pages = 0, "", 0
    while pages < limit // 1000 + 2:
        path = "/%s?max-keys=1000" % bucket + ("&start-after=%s" % after if after else "")
        j = await get_json(c, path)
        n += len(j["objects"])
        pages += 1
        if not j.get("is_truncated"):
            return n
        after = j["next_start_after"]
    return None


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


MEM_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def proc_mem(pid):
    """(VmRSS, VmHWM, RssAnon, RssFile) of a process in KiB; zeros once it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in MEM_FIELDS:
                    out[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return tuple(out.get(k, 0) for k in MEM_FIELDS)


class MemPeaks(threading.Thread):
    """Peaks of proc_mem(repld) sampled every `interval` seconds until stop()."""

    def __init__(self, pid_file, interval):
        super().__init__(daemon=True)
        self.pid_file, self.interval = pid_file, interval
        self.peaks = [0] * len(MEM_FIELDS)
        self.samples = 0
        self._done = threading.Event()

    def run(self):
        pid = None
        while not self._done.is_set():
            if pid is None and self.pid_file:
                pid = read_pid(self.pid_file)
            if pid is not None:
                mem = proc_mem(pid)
                self.peaks = [max(a, b) for a, b in zip(self.peaks, mem)]
                self.samples += 1
            self._done.wait(self.interval)

    def stop(self):
        self._done.set()
        self.join(timeout=5)


def proc_cpu_s(pid):
    """CPU seconds (user + system) the process has used, all its threads; None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def read_t0(path):
    try:
        with open(path) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


async def watch(args):
    a = Conn(args.a, timeout=10)
    b = Conn(args.b, timeout=60)
    c = Conn(args.c, timeout=60) if args.c else None
    res = {"events": args.expect, "ok": False, "error": None}
    t_target = {}  # target name -> wall time of the first poll that showed it drained
    st = await get_json(a, "/admin/replication/status")
    pend, field = pending_of(st)
    res["pending_field"] = field
    res["pending_at_start"] = pend
    if pend != args.expect:
        res["error"] = "A has %d events pending before repld starts, expected %d" % (pend, args.expect)
        return res
    open(args.ready_file, "w").close()

    rows = []
    csv = open(args.csv, "w")
    csv.write("# wall_time pending replicated repld_VmRSS_KiB repld_VmHWM_KiB repld_RssAnon_KiB repld_RssFile_KiB lag_s\n")
    repld_pid = None
    peaks = [0] * len(MEM_FIELDS)
    sampler = MemPeaks(args.pid_file, args.mem_interval)
    sampler.start()
    t0 = None
    wait_deadline = time.time() + 30
    t_done = None
    last = None
    try:
        while True:
            try:
                st = await get_json(a, "/admin/replication/status")
            except (HTTPError, asyncio.TimeoutError, ValueError) as e:
                res["error"] = "status poll of A failed: %s" % (e or "timed out")
                return res
            t = time.time()
            pend, _ = pending_of(st)
            repl = int(st.get("events_replicated", 0))
            if repld_pid is None and args.pid_file:
                repld_pid = read_pid(args.pid_file)
            mem = proc_mem(repld_pid) if repld_pid else (0,) * len(MEM_FIELDS)
            peaks = [max(a, b) for a, b in zip(peaks, mem)]
            lag = float(st.get("lag_seconds") or 0.0)  # age of the oldest event not yet on B
            csv.write("%.6f %d %d %s %.3f\n" % (t, pend, repl, " ".join(str(x) for x in mem), lag))
            rows.append((t, pend))
            last = st
            if t0 is None:
                t0 = read_t0(args.t0_file)
                if t0 is None and t > wait_deadline:
                    res["error"] = "repld was not started within 30 s"
                    return res
            for tg in st.get("targets") or []:
                if t0 is not None and tg["name"] not in t_target and int(tg["events_pending"]) == 0:
                    t_target[tg["name"]] = t
            if t0 is not None and pend == 0:
                t_done = t
                # what bounds the rate: repld's CPU over its life, which is the drain
                res["repld_cpu_s"] = proc_cpu_s(repld_pid) if repld_pid else None
                break
            if t0 is not None and t - t0 > args.timeout:
                break
            await asyncio.sleep(args.interval)
    finally:
        csv.close()
        sampler.stop()
    res["t0"] = t0
    res["polls"] = len(rows)
    res["mem_samples"] = sampler.samples
    peaks = [max(a, b) for a, b in zip(peaks, sampler.peaks)]
    res["repld_peak_kib"] = dict(zip(MEM_FIELDS, peaks))  # VmHWM is the true peak of VmRSS
    res["events_failed"] = int(last.get("events_failed", 0))
    res["events_replicated"] = int(last.get("events_replicated", 0))
    if t_done is None:
        pend = rows[-1][1]
        secs = rows[-1][0] - t0
        res.update(seconds=round(secs, 3), pending_at_end=pend,
                   events_per_s=round((args.expect - pend) / secs, 1) if secs > 0 else None,
                   error="drain did not finish within %.0f s: %d of %d events still pending" %
                   (args.timeout, pend, args.expect))
        return res
    secs = t_done - t0
    # the time of the first poll that saw the backlog start to move: repld's start-up cost
    first_move = next((t for t, p in rows if p < args.expect), t_done)
    res.update(seconds=round(secs, 3), pending_at_end=0, events_per_s=round(args.expect / secs, 1),
               startup_s=round(max(0.0, first_move - t0), 3))
    res["targets"] = {name: {"seconds": round(t - t0, 3), "events_per_s": round(args.expect / max(t - t0, 1e-6), 1)}
                      for name, t in sorted(t_target.items())}
    # B: count what arrived
    b_objects = None
    deadline = time.time() + 10
    while time.time() < deadline:  # B's reply to the last batch may precede A's status by a commit
        b_objects = await metric(b, "comio_objects")
        if b_objects is not None and int(b_objects) >= args.expect:
            break
        await asyncio.sleep(0.05)
    res["b_objects"] = int(b_objects) if b_objects is not None else None
    if c is not None:
        c_objects = await metric(c, "comio_objects")
        res["c_objects"] = int(c_objects) if c_objects is not None else None
    if args.expect <= args.list_max:
        res["b_listed"] = await list_count(b, args.bucket, args.expect)
    problems = []
    if res["b_objects"] != args.expect:
        problems.append("B's comio_objects is %s, expected %d" % (res["b_objects"], args.expect))
    if "b_listed" in res and res["b_listed"] != args.expect:
        problems.append("B's listing of %s has %s objects, expected %d" % (args.bucket, res["b_listed"], args.expect))
    if c is not None and res["c_objects"] != args.expect:
        problems.append("C's comio_objects is %s, expected %d" % (res["c_objects"], args.expect))
    if c is not None and len(res["targets"]) != 2:
        problems.append("A's status shows %d drained targets, expected 2" % len(res["targets"]))
    if res["events_failed"]:
        problems.append("A reports %d events failed" % res["events_failed"])
    if problems:
        res["error"] = "; ".join(problems)
    else:
        res["ok"] = True
    a.close()
    b.close()
    if c is not None:
        c.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--a", required=True, help="site A's base URL")
    ap.add_argument("--b", required=True, help="site B's base URL")
    ap.add_argument("--c", help="site C's base URL, when A ships to B and C")
    ap.add_argument("--bucket", default="drain")
    ap.add_argument("--expect", type=int, required=True, help="events in the backlog")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--t0-file", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--pid-file", help="repld's pid, written by run.sh once it starts: its RSS goes into the CSV")
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--mem-interval", type=float, default=0.002, help="how often repld's memory is read")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--list-max", type=int, default=100000)
    args = ap.parse_args()
    try:
        res = asyncio.run(watch(args))
    except (HTTPError, asyncio.TimeoutError, OSError, ValueError) as e:
        res = {"events": args.expect, "ok": False, "error": "drain watcher: %s" % (e or "timed out")}
    write_json(args.out, res)
    if not res["ok"]:
        print("drain: FAILED: %s" % res["error"], file=sys.stderr)
        return 1
    print("   drain: %d events in %.3f s = %.0f events/s (repld start-up to first ack %.3f s); B holds %d objects" %
          (res["events"], res["seconds"], res["events_per_s"], res["startup_s"], res["b_objects"]))
    for name, t in res.get("targets", {}).items():
        print("   drain to %s: %.3f s = %.0f events/s" % (name, t["seconds"], t["events_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
