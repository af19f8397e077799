#!/usr/bin/env python3
"""report.py - turn a benchmark run's results into one table, a plot, and docs.

  report.py --results DIR [--docs docs/benchmarks.md] [--png docs/bench-drain.png]

Reads what run.sh and the helpers left in DIR (machine.txt, commands.txt,
phases.txt, http/*.wrk and *.rss.csv, s3/*.wrk and *.cpu, s3big/s3big.json, drain-N/*, lag/*, big/*), prints the
table of figures, ratios and targets on stdout, writes DIR/table.md, and with
--docs replaces the part of that file between the markers
`<!-- BEGIN GENERATED -->` and `<!-- END GENERATED -->` (appending the part
when the markers are missing), so the hand-written text around it stays.
With --png it plots the events pending (and repld's RSS) over time during each
drain with gnuplot.
"""

import argparse
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rss as rsslib  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED -->"
END = "<!-- END GENERATED -->"
MiB = 1024.0


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def read_kv(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if ": " in line:
                    k, v = line.split(": ", 1)
                    out.append((k, v))
    except OSError:
        pass
    return out


def read_phases(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.rstrip("\n").split(" ", 2)
                if len(p) >= 2:
                    out[p[0]] = (p[1], p[2] if len(p) > 2 else "")
    except OSError:
        pass
    return out


def wrk_result(path):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("WRKJSON "):
                    return json.loads(line[len("WRKJSON "):])
    except (OSError, ValueError):
        pass
    return None


def fmt_int(x):
    return "-" if x is None else "{:,.0f}".format(x)


def fmt_ms(x):
    if x is None:
        return "-"
    return "%.2f ms" % x if x < 10 else "%.1f ms" % x if x < 100 else "{:,.0f} ms".format(x)


def fmt_mib(kib):
    return "-" if kib is None else "%.1f MiB" % (kib / MiB)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "-" if r is None else "%.2fx" % r


def cpu_use(d, r, events, targets):
    """"; CPU-s: repld X (Y us per delivered event), storaged-b Z (W us per event), ..." from a drain's result
    (repld_cpu_s) and its cpu.txt (each storaged's CPU over the drain), or "" when neither was recorded."""
    parts = []
    cpu = (r or {}).get("repld_cpu_s")
    if cpu is not None and events:
        parts.append("repld %.2f (%.1f us per delivered event)" % (cpu, cpu * 1e6 / (events * targets)))
    for name, v in read_kv_space(os.path.join(d, "cpu.txt")):
        try:
            sec = float(v)
        except ValueError:
            continue
        parts.append("%s %.2f%s" % (name, sec, "" if name.endswith("-a") else " (%.1f us per event)" % (sec * 1e6 / events)))
    return "; CPU-s over the drain: " + ", ".join(parts) if parts else ""


def read_kv_space(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition(" ")
                if k:
                    out.append((k, v))
    except OSError:
        pass
    return out


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs) // 2] if xs else None


def peak(rss_csv, name, field="VmHWM"):
    s = rsslib.summary(rss_csv).get(name)
    if not s:
        return None
    return max(s.get(field, 0), s.get("VmRSS", 0)) if field == "VmHWM" else s.get(field)


def mem(rss_csv, name):
    """'12.3 MiB (anon 2.1)': peak RSS of a process, and its peak anonymous part."""
    p = peak(rss_csv, name)
    if p is None:
        return "-"
    return "%s (anon %.1f)" % (fmt_mib(p), (peak(rss_csv, name, "RssAnon") or 0) / MiB)


class Report:
    def __init__(self, d):
        self.d = d
        self.phases = read_phases(os.path.join(d, "phases.txt"))
        self.rows = []
        self.notes = []

    def row(self, figure, comio, ref="", r="", target="", ok=None):
        self.rows.append((figure, comio, ref, r, target, verdict(ok) if target else ""))

    def phase_failed(self, phase, label):
        st, msg = self.phases.get(phase, ("not-run", ""))
        if st == "ok":
            return False
        what = {"failed": "FAILED", "not-run": "not run", "skipped": "skipped"}.get(st, st)
        self.row(label, "%s%s" % (what, (": " + msg) if msg else ""), "", "", "", None)
        return True

    # --- HTTP: wrk against nginx and storaged -------------------------------------------------------------------
    def http(self):
        if self.phase_failed("http", "HTTP (wrk vs nginx)"):
            return
        hd = os.path.join(self.d, "http")
        res = {}
        for op in ("get", "put"):
            for tgt in ("nginx", "comio"):
                runs = []
                for f in sorted(glob.glob(os.path.join(hd, "%s-%s-*.wrk" % (op, tgt)))):
                    w = wrk_result(f)
                    if w:
                        base = f[:-4]
                        w["rss"] = rsslib.summary(base + ".rss.csv")
                        runs.append(w)
                if runs:
                    runs.sort(key=lambda w: w["req_per_s"])
                    m = runs[len(runs) // 2]
                    m["rounds"] = len(runs)
                    m["all"] = [w["req_per_s"] for w in runs]
                    res[(op, tgt)] = m
        self.http_res = res

        def errs(w):
            e = w["errors"]
            return e["connect"] + e["read"] + e["write"] + e["status"] + e["timeout"]

        for op, label, target, factor in (("get", "GET 4 KiB, requests/s", ">= 0.9x nginx", 0.9),
                                          ("put", "PUT 4 KiB, requests/s (ComIO durable; nginx WebDAV, no fsync)",
                                           ">= 2x nginx", 2.0)):
            c, n = res.get((op, "comio")), res.get((op, "nginx"))
            if not c or not n:
                self.row(label, "no result", "", "", target, None)
                continue
            r = ratio(c["req_per_s"], n["req_per_s"])
            self.row(label, fmt_int(c["req_per_s"]), "nginx " + fmt_int(n["req_per_s"]), fmt_ratio(r), target,
                     r is not None and r >= factor)
            self.row("%s latency p50 / p99 (wrk)" % op.upper(),
                     "%s / %s" % (fmt_ms(c["latency_us"]["p50"] / 1e3), fmt_ms(c["latency_us"]["p99"] / 1e3)),
                     "nginx %s / %s" % (fmt_ms(n["latency_us"]["p50"] / 1e3), fmt_ms(n["latency_us"]["p99"] / 1e3)))
            for who, w in (("ComIO", c), ("nginx", n)):
                if errs(w):
                    self.notes.append("%s %s: wrk counted %d errors (%s)" % (who, op.upper(), errs(w), w["errors"]))
            if c["rounds"] > 1:
                self.notes.append("%s: median of %d rounds; ComIO %s, nginx %s req/s" %
                                  (op.upper(), c["rounds"], ", ".join(fmt_int(x) for x in c["all"]),
                                   ", ".join(fmt_int(x) for x in n["all"])))
        for op, target in (("put", "<= 100 MiB"), ("get", "")):
            c, n = res.get((op, "comio")), res.get((op, "nginx"))
            if not c:
                continue
            s = c["rss"].get("storaged", {})
            # the highest VmRSS sampled during this run (VmHWM would carry the peak of an earlier run over)
            hwm = s.get("VmRSS") or None
            ns = (n or {}).get("rss", {}).get("nginx-workers", {}) if n else {}
            self.row("storaged peak RSS (sampled every 20 ms), 64 connections of 4 KiB %ss (anon / file-backed)" % op.upper(),
                     "%s (%s / %s)" % (fmt_mib(hwm), fmt_mib(s.get("RssAnon")), fmt_mib(s.get("RssFile"))),
                     "nginx workers %s" % fmt_mib(ns.get("VmRSS")) if ns else "", "", target,
                     (hwm is not None and hwm <= 100 * MiB) if target else None)

    # --- s3: S3 with SigV4 against the native API, same server, same client, same run ---------------------------------
    def s3(self):
        if "s3" not in self.phases or self.phase_failed("s3", "S3 against the native API (wrk)"):
            return
        sd = os.path.join(self.d, "s3")
        res = {}
        for op in ("get", "put"):
            for api in ("native", "s3"):
                runs = []
                for f in sorted(glob.glob(os.path.join(sd, "%s-%s-*.wrk" % (op, api)))):
                    w = wrk_result(f)
                    if w:
                        cpu = read_text(f[:-4] + ".cpu")
                        try:
                            w["cpu_us"] = float(cpu) * 1e6 / w["requests"] if cpu and w["requests"] else None
                        except ValueError:
                            w["cpu_us"] = None
                        runs.append(w)
                if runs:
                    runs.sort(key=lambda w: w["req_per_s"])
                    m = runs[len(runs) // 2]
                    m["all"] = [w["req_per_s"] for w in runs]
                    res[(op, api)] = m
        for op, label in (("put", "S3 PutObject 4 KiB (SigV4, signed payload), requests/s"),
                          ("get", "S3 GetObject 4 KiB (SigV4), requests/s")):
            s, n = res.get((op, "s3")), res.get((op, "native"))
            target = ">= 0.9x native"
            if not s or not n:
                self.row(label, "no result", "", "", target, None)
                continue
            r = ratio(s["req_per_s"], n["req_per_s"])
            self.row(label, fmt_int(s["req_per_s"]), "native " + fmt_int(n["req_per_s"]), fmt_ratio(r), target,
                     r is not None and r >= 0.9)
            self.row("%s latency p50 / p99 (wrk): S3 (native)" % op.upper(),
                     "%s / %s" % (fmt_ms(s["latency_us"]["p50"] / 1e3), fmt_ms(s["latency_us"]["p99"] / 1e3)),
                     "native %s / %s" % (fmt_ms(n["latency_us"]["p50"] / 1e3), fmt_ms(n["latency_us"]["p99"] / 1e3)))
            if s.get("cpu_us") is not None and n.get("cpu_us") is not None:
                self.row("storaged CPU per %s (user + system, all threads): S3 (native)" % op.upper(),
                         "%.1f us" % s["cpu_us"], "native %.1f us" % n["cpu_us"], fmt_ratio(ratio(s["cpu_us"], n["cpu_us"])))
            if len(s["all"]) > 1:
                self.notes.append("s3 %s: median of %d rounds; S3 %s, native %s req/s" %
                                  (op.upper(), len(s["all"]), ", ".join(fmt_int(x) for x in s["all"]),
                                   ", ".join(fmt_int(x) for x in n["all"])))

    # --- s3big: a 1 GiB native PUT against the same bytes as an S3 multipart upload (boto3), same server, same run ----
    def s3big(self):
        if "s3big" not in self.phases or self.phase_failed("s3big", "S3 multipart upload of 1 GiB (boto3)"):
            return
        res = load_json(os.path.join(self.d, "s3big", "s3big.json"))
        rounds = (res or {}).get("rounds") or []
        label = "S3 multipart upload of %s MiB, %s MiB parts (boto3, %s at a time), MiB/s" % (
            fmt_int(res["size"] / 1048576.0), fmt_int(res["part"] / 1048576.0), res["concurrency"]) if res else ""
        target = ">= 0.8x native"
        if not rounds:
            self.row(label or "S3 multipart upload of 1 GiB (boto3)", "no result", "", "", target, None)
            return

        def median(api):  # the round of median MiB/s for this API
            rs = sorted(rounds, key=lambda r: r[api]["mib_s"])
            return rs[len(rs) // 2][api]

        m, n = median("multipart"), median("native")
        r = ratio(m["mib_s"], n["mib_s"])
        self.row(label, "%.1f" % m["mib_s"], "native PUT %.1f" % n["mib_s"], fmt_ratio(r), target, r is not None and r >= 0.8)
        self.row("1 GiB multipart: parts sent and stored / the CompleteMultipartUpload request (hashing what the chase left, "
                 "joining the parts, committing)",
                 "%.1f s / %.1f s" % (m["parts_s"], m["complete_s"]),
                 "native: body sent %.1f s / then to the 200 %.1f s" % (n["body_sent_s"], n["after_body_s"]))
        self.row("1 GiB: storaged CPU (user + system), share of the upload's time",
                 "%.1f s (%.0f%%)" % (m["storaged_cpu_s"], m["storaged_cpu_pct"]),
                 "native %.1f s (%.0f%%)" % (n["storaged_cpu_s"], n["storaged_cpu_pct"]))
        if m.get("storaged_written_mib") is not None and n.get("storaged_written_mib") is not None:
            self.row("1 GiB: bytes storaged caused to be written (/proc/PID/io)",
                     "%s MiB" % fmt_int(m["storaged_written_mib"]), "native %s MiB" % fmt_int(n["storaged_written_mib"]))
        self.notes.append("s3big (boto3 %s; the image's page cache %s): %s" % (
            res.get("boto3", "?"), res.get("image_cache", "as left"), "; ".join(
            "round %d: native %.1f MiB/s, multipart %.1f MiB/s (parts %.1f s, Complete %.1f s, boto3 CPU %.1f s), %.2fx" %
            (i + 1, x["native"]["mib_s"], x["multipart"]["mib_s"], x["multipart"]["parts_s"], x["multipart"]["complete_s"],
             x["multipart"]["client_cpu_s"], x["ratio"]) for i, x in enumerate(rounds))))

    # --- drains -----------------------------------------------------------------------------------------------------
    def drain_result(self, n, suffix=""):
        dd = os.path.join(self.d, "drain-%d%s" % (n, suffix))
        r = load_json(os.path.join(dd, "drain.json"))
        if r is None:
            return None
        r["fill"] = load_json(os.path.join(dd, "fill.json"))
        pk = r.get("repld_peak_kib") or {}
        r["repld_peak"] = max(pk.get("VmHWM", 0), pk.get("VmRSS", 0)) or None
        r["repld_anon"] = pk.get("RssAnon") or None
        r["repld_file"] = pk.get("RssFile") or None
        r["a_mem"] = mem(os.path.join(dd, "rss.csv"), "storaged-a")
        r["b_mem"] = mem(os.path.join(dd, "rss.csv"), "storaged-b")
        return r

    def small_drain(self, small):
        """The drain of `small` events: with --rounds, the round of median rate, with the highest repld
        memory of all rounds (the short drain's peak, the base of the flatness ratios)."""
        rounds = [self.drain_result(small)]
        r = 2
        while "drain-%d-r%d" % (small, r) in self.phases:
            if self.phase_failed("drain-%d-r%d" % (small, r), "drain of %s, round %d" % (fmt_int(small), r)):
                return None
            rounds.append(self.drain_result(small, "-r%d" % r))
            r += 1
        if any(x is None for x in rounds):
            return None
        if len(rounds) == 1:
            return rounds[0]
        by_rate = sorted(rounds, key=lambda x: x.get("events_per_s") or 0)
        med = dict(by_rate[len(by_rate) // 2])
        for k in ("repld_peak", "repld_anon", "repld_file"):
            med[k] = max((x[k] for x in rounds if x.get(k)), default=None)
        med["ok"] = all(x.get("ok") for x in rounds)
        self.notes.append("drain %s: median of %d rounds; %s events/s; repld's memory: the highest of the rounds" %
                          (fmt_int(small), len(rounds), ", ".join(fmt_int(x.get("events_per_s")) for x in rounds)))
        return med

    def drains(self, small, large):
        rs = None
        label = "drain of %s queued 4 KiB PUTs, events/s (repld start to 0 pending)"
        if not self.phase_failed("drain-%d" % small, label % fmt_int(small)):
            rs = self.small_drain(small)
            self.drain_row(small, rs, None)
        self.drain2(small, rs)
        if "drain-%d" % large in self.phases:
            if not self.phase_failed("drain-%d" % large, label % fmt_int(large)):
                rl = self.drain_result(large)
                self.drain_row(large, rl, rs)
        else:
            self.row(label % fmt_int(large), "not run (tests/bench/run.sh --full)", "", "",
                     "within 20% of the 10,000 rate", None)

    def drain2(self, n, base):
        """The drain of n events to two targets (phase drain2): each target's rate against the one-target drain."""
        label = "drain of %s queued 4 KiB PUTs to two targets (B and C), events/s of the slower target" % fmt_int(n)
        target = ">= 80% of the one-target rate"
        if "drain2-%d" % n not in self.phases or self.phase_failed("drain2-%d" % n, label):
            return
        r = load_json(os.path.join(self.d, "drain2-%d" % n, "drain.json"))
        per = (r or {}).get("targets") or {}
        if r is None or len(per) != 2:
            self.row(label, "no result" if r is None else "(%s)" % r.get("error"), "", "", target, None)
            return
        rate = min(t["events_per_s"] for t in per.values())
        one = (base or {}).get("events_per_s")
        rr = ratio(rate, one)
        self.row(label, fmt_int(rate) + ("" if r.get("ok") else " (%s)" % r.get("error")),
                 "one target " + fmt_int(one) if one else "", fmt_ratio(rr), target,
                 rr is not None and rr >= 0.8 and bool(r.get("ok")))
        self.notes.append("drain %s to two targets: %s; C holds %s objects%s" %
                          (fmt_int(n), ", ".join("%s %s events/s in %s s" % (k, fmt_int(t["events_per_s"]), t["seconds"])
                                                 for k, t in sorted(per.items())), fmt_int(r.get("c_objects")),
                           cpu_use(os.path.join(self.d, "drain2-%d" % n), r, n, 2)))

    def fanout(self, n):
        """Phase fanout: the drain of n events to one target, then to two, each site's processes capped at the same
        CPU share (cgroups): the sites as separate machines of equal size. Each target's rate against one target's."""
        label = ("drain of %s queued 4 KiB PUTs to two targets, each site capped at an equal CPU share, "
                 "events/s of the slower target" % fmt_int(n))
        target = ">= 80% of the one-target rate"
        if ("fanout1-%d" % n not in self.phases and "fanout2-%d" % n not in self.phases) or \
                self.phase_failed("fanout1-%d" % n, label + " (one target)") or self.phase_failed("fanout2-%d" % n, label):
            return
        one = load_json(os.path.join(self.d, "fanout1-%d" % n, "drain.json"))
        two = load_json(os.path.join(self.d, "fanout2-%d" % n, "drain.json"))
        share = read_text(os.path.join(self.d, "fanout2-%d" % n, "cpu-share"))
        per = (two or {}).get("targets") or {}
        if one is None or two is None or len(per) != 2:
            self.row(label, "no result", "", "", target, None)
            return
        rate = min(t["events_per_s"] for t in per.values())
        base = one.get("events_per_s")
        rr = ratio(rate, base)
        ok = bool(one.get("ok")) and bool(two.get("ok"))
        self.row(label, fmt_int(rate) + ("" if ok else " (%s)" % (two.get("error") or one.get("error"))),
                 "one target " + fmt_int(base), fmt_ratio(rr), target, rr is not None and rr >= 0.8 and ok)
        self.notes.append("fan-out with each site capped at %s CPUs (a cgroup per site): one target %s events/s in %s s%s; "
                          "two targets %s%s" % ((share or "?").strip(), fmt_int(base), one.get("seconds"),
                                                cpu_use(os.path.join(self.d, "fanout1-%d" % n), one, n, 1),
                                                ", ".join("%s %s events/s in %s s" % (k, fmt_int(t["events_per_s"]), t["seconds"])
                                                          for k, t in sorted(per.items())),
                                                cpu_use(os.path.join(self.d, "fanout2-%d" % n), two, n, 2)))

    def drain_row(self, n, r, base):
        label = "drain of %s queued 4 KiB PUTs, events/s (repld start to 0 pending)" % fmt_int(n)
        if r is None:
            self.row(label, "no result", "", "", ">= 50,000", None)
            return
        rate = r.get("events_per_s")
        if base is None:
            self.row(label, fmt_int(rate) + ("" if r.get("ok") else " (%s)" % r.get("error")),
                     "lsyncd ~5,100 files/s", fmt_ratio(ratio(rate, 5100)), ">= 50,000",
                     rate is not None and rate >= 50000 and r.get("ok"))
        else:
            rr = ratio(rate, base.get("events_per_s"))
            self.row(label, fmt_int(rate) + ("" if r.get("ok") else " (%s)" % r.get("error")),
                     "10,000 drain " + fmt_int(base.get("events_per_s")), fmt_ratio(rr),
                     ">= 50,000 and within 20% of the 10,000 rate",
                     rr is not None and rr >= 0.8 and rate >= 50000 and bool(r.get("ok")))
        extra = "%s s; B holds %s objects" % (r.get("seconds"), fmt_int(r.get("b_objects")))
        if r.get("startup_s") is not None:
            extra += "; %.3f s from repld's start to the first ack" % r["startup_s"]
        f = r.get("fill") or {}
        if f.get("puts_per_s"):
            extra += "; backlog filled at %s PUT/s (Python client, replication log on)" % fmt_int(f["puts_per_s"])
        self.notes.append("drain %s: %s" % (fmt_int(n), extra))
        label = "repld peak RSS, drain of %s: VmRSS (file-backed part)" % fmt_int(n)
        alabel = "repld peak anonymous memory (RssAnon: VmRSS less LMDB's mapped file pages), drain of %s" % fmt_int(n)
        if base is None:
            self.row(label, "%s (%s)" % (fmt_mib(r["repld_peak"]), fmt_mib(r["repld_file"])))
            self.row(alabel, fmt_mib(r["repld_anon"]))
        else:
            rr = ratio(r["repld_peak"], base["repld_peak"])
            self.row(label, "%s (%s)" % (fmt_mib(r["repld_peak"]), fmt_mib(r["repld_file"])),
                     "10,000 drain " + fmt_mib(base["repld_peak"]), fmt_ratio(rr), "flat (<= 1.25x)",
                     rr is not None and rr <= 1.25)
            rr = ratio(r["repld_anon"], base["repld_anon"])
            self.row(alabel, fmt_mib(r["repld_anon"]), "10,000 drain " + fmt_mib(base["repld_anon"]), fmt_ratio(rr),
                     "flat (<= 1.25x)", rr is not None and rr <= 1.25)
        self.row("storaged peak RSS during the drain of %s, A / B" % fmt_int(n),
                 "%s / %s" % (r["a_mem"], r["b_mem"]))

    # --- lag --------------------------------------------------------------------------------------------------------
    def lag(self):
        if self.phase_failed("lag", "lag of single 4 KiB PUTs at 100/s"):
            return
        r = load_json(os.path.join(self.d, "lag", "lag.json")) or {}
        l = r.get("lag") or {}
        if not l:
            self.row("lag of single 4 KiB PUTs", "no result: %s" % r.get("error"), "", "", "", None)
            return
        label = "lag A 200 -> readable on B, %d PUTs of 4 KiB at %.0f/s" % (l["n"], r.get("rate", 100))
        self.row(label + ": p50", fmt_ms(l["p50_ms"]), "lsyncd 96 ms (delay 0)", "", "<= 5 ms", l["p50_ms"] <= 5)
        self.row(label + ": p99", fmt_ms(l["p99_ms"]), "lsyncd 141 ms (delay 0)", "", "<= 50 ms", l["p99_ms"] <= 50)
        self.row(label + ": max", fmt_ms(l["max_ms"]))
        p = r.get("put_latency") or {}
        if p:
            self.row("PUT latency on A at 100/s (durable): p50 / p99", "%s / %s" % (fmt_ms(p["p50_ms"]),
                                                                                   fmt_ms(p["p99_ms"])))
        rc = os.path.join(self.d, "lag", "rss.csv")
        self.row("peak RSS during the lag run: storaged A / B / repld",
                 " / ".join(mem(rc, n) for n in ("storaged-a", "storaged-b", "repld")))
        if r.get("schedule_slips_over_5ms"):
            self.notes.append("lag: the client fell more than 5 ms behind its 100/s schedule %d times "
                              "(offered rate %.1f/s)" % (r["schedule_slips_over_5ms"], r.get("offered_rate", 0)))

    def big(self):
        if self.phase_failed("big", "lag of a 100 MiB object"):
            return
        r = load_json(os.path.join(self.d, "big", "big.json")) or {}
        if not r.get("runs"):
            self.row("lag of a 100 MiB object", "no result: %s" % r.get("error"), "", "", "<= 1 s", None)
            return
        mb = r["size"] / (1024 * 1024)
        self.row("lag A 200 -> on B with the right ETag, %.0f MiB object (median of %d; max)" % (mb, len(r["runs"])),
                 "%s (max %s)" % (fmt_ms(r["lag_ms_median"]), fmt_ms(r["lag_ms_max"])), "lsyncd 940-1,260 ms",
                 "", "<= 1 s", r["lag_ms_median"] <= 1000 and r["lag_ms_max"] <= 1000)
        self.notes.append("100 MiB: PUT on A took %s s (median); bytes on B verified by MD5: %s" %
                          (r.get("put_s_median"), all(x.get("bytes_verified") for x in r["runs"])))
        rc = os.path.join(self.d, "big", "rss.csv")
        self.row("peak RSS during the 100 MiB runs: storaged A / B / repld",
                 " / ".join(mem(rc, n) for n in ("storaged-a", "storaged-b", "repld")))

    # --- sync mode --------------------------------------------------------------------------------------------------
    def sync(self):
        if self.phase_failed("sync", "sync mode against async mode"):
            return
        r = load_json(os.path.join(self.d, "sync", "sync.json")) or {}
        if "ratio" not in r:
            self.row("sync mode against async mode", "no result: %s" % (r.get("async", {}).get("error") or
                                                                          r.get("sync", {}).get("error")), "", "", "", None)
            return
        a, s = r["async"], r["sync"]
        self.row("PUT 4 KiB, wrk -c%d, one target: sync mode (async mode as reference)" % r["conns"],
                 "%s req/s" % fmt_int(s["wrk"]["req_per_s"]), "async %s req/s" % fmt_int(a["wrk"]["req_per_s"]),
                 fmt_ratio(r["ratio"]), ">= 0.50", r["ratio"] >= 0.5)
        self.row("lone PUT on loopback, p50: sync (async as reference)", fmt_ms(s["lone"]["p50_ms"]),
                 "async %s" % fmt_ms(a["lone"]["p50_ms"]))
        budget = a["lone_wan"]["p50_ms"] + r["rtt_ms"] + 5
        self.row("lone PUT across a %.0f ms RTT, p50: sync (async as reference)" % r["rtt_ms"],
                 fmt_ms(s["lone_wan"]["p50_ms"]), "async %s" % fmt_ms(a["lone_wan"]["p50_ms"]), "",
                 "<= async + RTT + 5 ms (%s)" % fmt_ms(budget), s["lone_wan"]["p50_ms"] <= budget)

    # --- wan: through the test link (tests/bench/wan.py) -------------------------------------------------------------
    def wan(self):
        if self.phase_failed("wan", "WAN figures (50 ms relay)"):
            return
        r = load_json(os.path.join(self.d, "wan", "wan.json")) or {}
        if "drain_rtt50_events_per_s" in r:
            q = r["drain_rtt50_over_loopback"]
            self.row("drain of 10,000 4 KiB PUTs over a 50 ms round trip, events/s (vs loopback, same run)",
                     fmt_int(r["drain_rtt50_events_per_s"]), "loopback %s" % fmt_int(r["drain_loopback_events_per_s"]),
                     fmt_ratio(q), ">= 0.5x loopback", q >= 0.5)
        if "big_mbit" in r:
            self.row("one %d MiB object over 50 ms capped at 200 Mbit/s, Mbit/s" % r["big_mib"], "%.1f" % r["big_mbit"],
                     "cap 200", fmt_ratio(r["big_of_cap"]), ">= 80% of the cap", r["big_of_cap"] >= 0.8)
        if "limit_measured_mbit" in r:
            self.row("bandwidth_limit 100Mbit, 8 workers and fetches: Mbit/s the link carried", "%.2f" % r["limit_measured_mbit"],
                     "limit 100", fmt_ratio(r["limit_measured_mbit"] / 100), "within 10%", r["limit_error"] <= 0.10)
        for kind, target, ok in (("text", ">= 3x", lambda g: g >= 3), ("random", "<= 5% slower", lambda g: g >= 0.95)):
            if "comp_%s_gain" % kind in r:
                self.row("%s objects over 100 Mbit/s, 50 ms: replicated MB/s with zstd (vs none)" % kind,
                         "%.2f" % r["comp_%s_zstd_mbyte_per_s" % kind], "none %.2f" % r["comp_%s_none_mbyte_per_s" % kind],
                         fmt_ratio(r["comp_%s_gain" % kind]), target, ok(r["comp_%s_gain" % kind]))
        for f in r.get("failed", []):
            self.row("WAN: %s" % f, "FAILED", "", "", "", None)

    def fullsync(self):
        """Phase fullsync: a full sync (B wiped, rebuilt from A) against the drain of the same objects and B's own
        PUT rate, a resync of identical sites, and repld's RSS with 1,000 and 100,000 objects (fullsync.py)."""
        if self.phase_failed("fullsync", "full sync of 100,000 objects of 4 KiB"):
            return
        cases = (load_json(os.path.join(self.d, "fullsync", "fullsync.json")) or {}).get("cases", {})
        many, big, small = cases.get("many", {}), cases.get("big", {}), cases.get("small", {})
        for c, label in ((many, "full sync"), (big, "full sync of big objects"), (small, "small full sync")):
            if c.get("error"):
                self.row(label, "FAILED: %s" % c["error"], "", "", "", None)
        if "fullsync" in many:
            fs, dr = many["fullsync"]["objects_per_s"], many["drain"]["objects_per_s"]
            r = ratio(fs, dr)
            self.row("full sync of %s objects of %d KiB (B wiped, rebuilt from A), objects/s" %
                     (fmt_int(many["count"]), many["size"] // 1024), fmt_int(fs),
                     "drain of the same: %s" % fmt_int(dr), fmt_ratio(r), ">= 20,000/s, >= 0.8 x drain",
                     fs >= 20000 and r is not None and r >= 0.8)
        if "resync" in many:
            rs = many["resync"]
            self.row("resync of two identical sites of %s objects" % fmt_int(many["count"]),
                     "%.2f s (%s shipped)" % (rs["seconds"], fmt_int(rs["sync"]["objects_shipped"])), "", "",
                     "< 5 s", rs["seconds"] < 5)
        if "fullsync" in big and "direct_b" in big:
            fs, direct = big["fullsync"]["bytes_per_s"], big["direct_b"]["bytes_per_s"]
            r = ratio(fs, direct)
            self.row("full sync of %.0f GiB in %d MiB objects, MiB/s" %
                     (big["count"] * big["size"] / 2 ** 30, big["size"] // 2 ** 20), "%.0f" % (fs / 2 ** 20),
                     "PUT straight to B: %.0f" % (direct / 2 ** 20), fmt_ratio(r), ">= 0.8 x B's PUT rate",
                     r is not None and r >= 0.8)
        if "fullsync" in many and "fullsync" in small:
            pm, ps = many["fullsync"]["repld_rss_kib_peak"], small["fullsync"]["repld_rss_kib_peak"]
            am, as_ = many["fullsync"].get("repld_anon_kib_peak"), small["fullsync"].get("repld_anon_kib_peak")
            r = ratio(am, as_)
            # the verdict is on the anonymous memory: VmRSS also counts the pages of LMDB's map repld has read
            # (page cache shared with storaged), which grow with the store, not with what repld holds
            self.row("repld's peak anonymous memory during a full sync, %s vs %s objects (VmRSS)" %
                     (fmt_int(small["count"]), fmt_int(many["count"])),
                     "%s vs %s (%s vs %s)" % (fmt_mib(as_), fmt_mib(am), fmt_mib(ps), fmt_mib(pm)), "",
                     fmt_ratio(r), "within 25%", r is not None and r <= 1.25)
            self.notes.append("full sync: CPU seconds over the drain %r and over the full sync %r of %s objects" %
                              (many["drain"].get("cpu_s"), many["fullsync"].get("cpu_s"), fmt_int(many["count"])))

    def scrub(self):
        """Phase scrub: one scrub pass unpaced (MB/s, objects/s) against a plain sequential read of the image's data
        extents, and a pass at the default storage.scrub_rate against that rate (scrubbench.py)."""
        if self.phase_failed("scrub", "scrub pass"):
            return
        r = load_json(os.path.join(self.d, "scrub", "scrub.json")) or {}
        if r.get("error"):
            self.row("scrub pass", "FAILED: %s" % r["error"], "", "", "", None)
        if "unpaced" in r and "read" in r:
            u, rd = r["unpaced"], r["read"]
            self.row("scrub pass, %.1f GB in %s objects, storage.scrub_rate 0 (unpaced), MB/s (objects/s)" %
                     (u["bytes"] / 1e9, fmt_int(u["objects"])), "%.0f (%s)" % (u["mb_per_s"], fmt_int(u["objects_per_s"])),
                     "sequential read of the image (faster of 2): %.0f" % rd["mb_per_s"], fmt_ratio(ratio(u["mb_per_s"], rd["mb_per_s"])))
            self.notes.append("scrub: %s" % r.get("page_cache", ""))
        if "paced" in r:
            q = r["paced"]
            self.row("scrub pass at the default storage.scrub_rate, MB/s over %.0f s" % q["seconds"], "%.2f" % q["mb_per_s"],
                     "configured %.1f" % (q["configured_rate"] / 1e6), fmt_ratio(q["ratio"]), "within 10% of the rate",
                     q["ratio"] is not None and 0.9 <= q["ratio"] <= 1.1)

    # --- output -----------------------------------------------------------------------------------------------------
    def table(self):
        out = ["| figure | ComIO | reference | ratio | target | verdict |", "|---|---|---|---|---|---|"]
        for r in self.rows:
            out.append("| " + " | ".join(str(x).replace("|", "/") for x in r) + " |")
        return "\n".join(out)


def plot(results, png, runs):
    """Per drain, two panels against seconds since repld started: events pending
    (left axis) and repld's RSS (right axis); and the lag, the age of the oldest
    event not yet on B as A's status reports it (lag_seconds)."""
    series = []
    for n in runs:
        dd = os.path.join(results, "drain-%d" % n)
        r = load_json(os.path.join(dd, "drain.json"))
        if not r or not r.get("t0") or not os.path.exists(os.path.join(dd, "drain.csv")):
            continue
        t0 = r["t0"]
        pend = os.path.join(dd, "plot-pending.dat")
        with open(os.path.join(dd, "drain.csv")) as f, open(pend, "w") as o:
            for line in f:
                if line.startswith("#"):
                    continue
                p = line.split()
                if len(p) >= 7:  # seconds since repld started, events pending, repld's VmRSS and RssAnon in MiB, lag in s
                    mem = ["%.2f" % (int(x) / MiB) if int(p[3]) else "NaN" for x in (p[3], p[5])]
                    lag = p[7] if len(p) >= 8 else "NaN"
                    o.write("%.4f %s %s %s %s\n" % (float(p[0]) - t0, p[1], mem[0], mem[1], lag))
        series.append((n, r, pend))
    if not series:
        return "no drain data to plot"
    g = ["set terminal pngcairo size 1400,%d font 'sans,10'" % (380 * len(series) + 40),
         "set output '%s'" % png, "set multiplot layout %d,2" % len(series)]
    for n, r, pend in series:
        title = "Drain of %s queued 4 KiB PUTs from A to B: %s events/s" % (fmt_int(n), fmt_int(r.get("events_per_s")))
        g += ["set title \"%s\"" % title, "set xlabel 'seconds since repld started'",
              "set ylabel 'events pending on A (/admin/replication/status)'", "set y2label 'repld memory (MiB)'", "set ytics nomirror",
              "set y2tics", "set grid", "set key outside top center horizontal samplen 3", "set yrange [0:*]", "set y2range [0:*]",
              "set format y '%.0f'",
              "plot '%s' using 1:2 with lines lw 2 title 'events pending on A', "
              "'' using 1:3 axes x1y2 with lines lw 1 dt 2 title 'repld VmRSS (right)', "
              "'' using 1:4 axes x1y2 with lines lw 1 dt 3 title 'repld RssAnon (right)'" % pend]
        g += ["set title \"Lag during the drain of %s: age of the oldest event not yet on B\"" % fmt_int(n),
              "set xlabel 'seconds since repld started'", "set ylabel 'lag on A (lag\\_seconds), s'", "unset y2label",
              "unset y2tics", "set ytics mirror", "set yrange [0:*]", "set format y '%g'",
              "plot '%s' using 1:5 with lines lw 2 title 'lag (A: /admin/replication/status lag\\_seconds)'" % pend]
    g.append("unset multiplot")
    script = os.path.join(results, "drain.gp")
    with open(script, "w") as f:
        f.write("\n".join(g) + "\n")
    p = subprocess.run(["gnuplot", script], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return "gnuplot failed: %s" % p.stderr.strip()[-500:]
    return None


def generated(rep, results, png_rel, plot_err):
    machine = read_kv(os.path.join(results, "machine.txt"))
    commands = []
    try:
        with open(os.path.join(results, "commands.txt")) as f:
            for line in f:  # the rounds repeat the same wrk commands: each once
                line = line.rstrip("\n")
                if line.strip() and line not in commands:
                    commands.append(line)
    except OSError:
        pass
    md = dict(machine)
    out = []
    prov = md.get("provisional", "no") != "no"
    out.append("## Results of the last run (%s)" % md.get("date", "?"))
    out.append("")
    if prov:
        out.append("> **Provisional figures.** %s Rerun `tests/bench/run.sh` on a quiet machine before quoting them." %
                   md.get("provisional"))
        out.append("")
    out.append("Machine:")
    out.append("")
    for k, v in machine:
        if k in ("provisional",):
            continue
        out.append("- %s: %s" % (k, v))
    out.append("")
    out.append(rep.table())
    out.append("")
    if rep.notes:
        out.append("Notes from this run:")
        out.append("")
        for n in rep.notes:
            out.append("- " + n)
        out.append("")
    if png_rel:
        if plot_err:
            out.append("(No drain plot from this run: %s.)" % plot_err)
        else:
            out.append("Events pending on A, and repld's RSS, during the drain(s):")
            out.append("")
            out.append("![events pending during the drain](%s)" % png_rel)
        out.append("")
    if commands:
        out.append("Commands of this run:")
        out.append("")
        out.append("```")
        out.extend(commands)
        out.append("```")
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--results", required=True)
    ap.add_argument("--docs")
    ap.add_argument("--png")
    ap.add_argument("--drain-small", type=int, default=10000)
    ap.add_argument("--drain-large", type=int, default=1000000)
    ap.add_argument("--fanout", type=int, default=50000)
    args = ap.parse_args()
    rep = Report(args.results)
    rep.http()
    rep.s3()
    rep.s3big()
    rep.drains(args.drain_small, args.drain_large)
    rep.fanout(args.fanout)
    rep.lag()
    rep.big()
    rep.sync()
    rep.wan()
    rep.fullsync()
    rep.scrub()
    plot_err = None
    png_rel = None
    if args.png:
        try:
            plot_err = plot(args.results, args.png, (args.drain_small, args.drain_large))
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            plot_err = "plot failed: %s" % e
        if args.docs:
            png_rel = os.path.relpath(args.png, os.path.dirname(os.path.abspath(args.docs)))
    text = generated(rep, args.results, png_rel, plot_err)
    with open(os.path.join(args.results, "table.md"), "w") as f:
        f.write(text + "\n")
    print(rep.table())
    if rep.notes:
        print()
        for n in rep.notes:
            print("- " + n)
    if plot_err:
        print("plot: %s" % plot_err)
    if args.docs:
        try:
            with open(args.docs) as f:
                doc = f.read()
        except OSError:
            doc = ""
        block = "%s\n%s\n%s" % (BEGIN, text, END)
        if BEGIN in doc and END in doc:
            doc = doc[:doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + ("\n\n" if doc else "") + block + "\n"
        tmp = args.docs + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc)
        os.replace(tmp, args.docs)
        print("\nwrote %s%s" % (args.docs, "" if plot_err or not args.png else " and " + args.png))
    return 0


if __name__ == "__main__":
    sys.exit(main())
