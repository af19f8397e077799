#!/usr/bin/env python3
"""rss.py - sample the memory of processes until told to stop.

  rss.py --out FILE.csv [--interval 0.02] NAME=PID [NAME=+PID ...]

Every --interval seconds, reads /proc/PID/status of each process and appends
one row per process to FILE.csv: wall time, name, VmRSS, VmHWM, RssAnon,
RssFile (KiB). NAME=+PID sums PID's children instead (e.g. nginx's workers).
Stops on SIGTERM or SIGINT, when every process is gone, or after --max-seconds.

  rss.py --summary FILE.csv [--from T0] [--to T1]
prints JSON: for each name, the peak of each column over the samples in
[T0, T1] and the number of samples.
"""

import argparse
import json
import os
import signal
import sys
import time

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def read_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in FIELDS:
                    out[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return out


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return kids


def sample(targets, out, interval, max_seconds):
    stop = [False]

    def on_signal(signum, frame):
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    deadline = time.time() + max_seconds
    with open(out, "a") as f:
        while not stop[0] and time.time() < deadline:
            t = time.time()
            alive = 0
            for name, pid, summed in targets:
                if summed:
                    vals = [v for v in (read_status(k) for k in children(pid)) if v]
                    st = {k: sum(v.get(k, 0) for v in vals) for k in FIELDS} if vals else None
                else:
                    st = read_status(pid)
                if st is None:
                    continue
                alive += 1
                f.write("%.6f %s %s\n" % (t, name, " ".join(str(st.get(k, 0)) for k in FIELDS)))
            f.flush()
            if alive == 0:
                break
            time.sleep(interval)


def summary(path, t_from=None, t_to=None):
    peaks = {}
    try:
        f = open(path)
    except OSError:
        return peaks
    with f:
        for line in f:
            p = line.split()
            if len(p) != 2 + len(FIELDS):
                continue
            t = float(p[0])
            if (t_from is not None and t < t_from) or (t_to is not None and t > t_to):
                continue
            d = peaks.setdefault(p[1], {"samples": 0})
            d["samples"] += 1
            for k, v in zip(FIELDS, p[2:]):
                d[k] = max(d.get(k, 0), int(v))
    return peaks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out")
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--max-seconds", type=float, default=3600)
    ap.add_argument("--summary")
    ap.add_argument("--from", dest="t_from", type=float)
    ap.add_argument("--to", dest="t_to", type=float)
    ap.add_argument("targets", nargs="*", metavar="NAME=PID")
    args = ap.parse_args()
    if args.summary:
        print(json.dumps(summary(args.summary, args.t_from, args.t_to), sort_keys=True))
        return 0
    targets = []
    for t in args.targets:
        name, _, pid = t.partition("=")
        summed = pid.startswith("+")
        targets.append((name, int(pid.lstrip("+")), summed))
    if not args.out or not targets:
        ap.error("--out and at least one NAME=PID are needed")
    sample(targets, args.out, args.interval, args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
