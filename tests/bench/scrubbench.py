#!/usr/bin/env python3
"""scrubbench.py - the scrub phase of the benchmark: one pass of the scrub, unpaced and paced, against a plain read.

  scrubbench.py --bin DIR --work DIR --token-file F --out FILE.json [--big-count 2048] [--big-size 1048576]
                [--small-count 20000] [--small-size 4096] [--paced-seconds 10] [--timeout S]

On one fresh storaged (127.0.0.1, a free port):
  1. storage.scrub_rate 0 (no scheduled pass; a pass asked for runs unpaced): fill it with BIG-COUNT objects of
     BIG-SIZE and SMALL-COUNT of SMALL-SIZE (fill.py);
  2. the bound: the image file's data extents (SEEK_DATA/SEEK_HOLE) read sequentially in 8 MiB reads, before the
     pass and again after it (the faster is the one compared: either can be slowed by the machine's other work);
  3. the page cache dropped before each read and the pass (sync; echo 3 > /proc/sys/vm/drop_caches, when root: the
     output says when it could not), POST /admin/scrub, GET /admin/scrub polled every 50 ms until the pass is
     recorded as the last one: MB/s and objects/s over the time from the POST to the first status that shows it
     ended, and over the pass's own seconds;
  4. storaged restarted with the default storage.scrub_rate (4MB/s), a pass asked for, its bytes read over
     PACED-SECONDS from the first status that shows it running: the rate measured against the configured one.
Every process it starts is stopped by its pid on exit. Writes one JSON document to --out.
MB is 10^6 bytes, as in storage.scrub_rate.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fullsync  # noqa: E402  (Site, wait, do_fill: the same sites and fill as the fullsync phase)
from benchlib import write_json  # noqa: E402

READ_CHUNK = 8 << 20
DEFAULT_RATE = 4000000  # storage.scrub_rate's default, docs/configuration.md


class ScrubSite(fullsync.Site):
    """A site whose config also sets storage.scrub_rate (None: the default)."""

    def __init__(self, args, d, size, scrub_rate):
        super().__init__(args, d, "site-s", size)
        self.scrub_rate = scrub_rate

    def write_config(self):
        super().write_config()
        if self.scrub_rate is not None:
            with open(os.path.join(self.dir, "config.yaml"), "a") as f:
                f.write("storage:\n  scrub_rate: %s\n" % self.scrub_rate)

    def scrub(self, method="GET"):
        req = urllib.request.Request(self.url + "/admin/scrub", data=b"" if method == "POST" else None, method=method)
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())


def drop_caches():
    """Drops the page cache; returns None, or why it could not."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return None
    except OSError as e:
        return "page cache not dropped (%s): the reads may come from memory" % (e.strerror or e)


def read_extents(path):
    """Reads the data extents of a sparse file in order; returns (bytes, seconds)."""
    total = 0
    buf = bytearray(READ_CHUNK)  # one buffer, read into: no allocation per read
    view = memoryview(buf)
    t0 = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        off = 0
        while off < end:
            try:
                off = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after off
                break
            hole = os.lseek(fd, off, os.SEEK_HOLE)
            while off < hole:
                n = os.preadv(fd, [view[:min(READ_CHUNK, hole - off)]], off)
                if n == 0:
                    break
                total += n
                off += n
    finally:
        os.close(fd)
    return total, time.monotonic() - t0


def timed_read(site, when):
    n, secs = read_extents(os.path.join(site.dir, "store.img"))
    fullsync.log("   sequential read of the image's data extents, %s the pass: %.1f MB in %.2f s, %.1f MB/s" %
                 (when, n / 1e6, secs, n / secs / 1e6))
    return {"bytes": n, "seconds": round(secs, 3), "mb_per_s": round(n / secs / 1e6, 1)}


def unpaced_pass(site, timeout):
    before = site.scrub()[1]
    done_pass = (before.get("last") or {}).get("pass", 0)
    t0 = time.monotonic()
    code, _ = site.scrub("POST")
    if code != 202:
        raise RuntimeError("POST /admin/scrub answered %d" % code)
    st = fullsync.wait(lambda: (lambda s: s if (s.get("last") or {}).get("pass", 0) > done_pass and not s["running"]
                                else None)(site.scrub()[1]), timeout, "the scrub pass", interval=0.05)
    secs = time.monotonic() - t0
    last = st["last"]
    return {"seconds": round(secs, 3), "pass_seconds": last["seconds"], "objects": last["objects"], "bytes": last["bytes"],
            "damaged": last["damaged"], "mb_per_s": round(last["bytes"] / secs / 1e6, 1),
            "objects_per_s": round(last["objects"] / secs, 1),
            "pass_mb_per_s": round(last["bytes"] / last["seconds"] / 1e6, 1) if last["seconds"] > 0 else None}


def paced_pass(site, seconds):
    code, st = site.scrub("POST")
    if code != 202:
        raise RuntimeError("POST /admin/scrub answered %d" % code)
    st = fullsync.wait(lambda: (lambda s: s if s["running"] and s["current"] else None)(site.scrub()[1]), 30,
                       "the paced pass to run", interval=0.05)
    t0, b0 = time.monotonic(), st["current"]["bytes"]
    time.sleep(seconds)
    st = site.scrub()[1]
    secs = time.monotonic() - t0
    if not st["running"]:
        raise RuntimeError("the paced pass ended within %.0f s: the store is too small to measure its pace" % seconds)
    got = st["current"]["bytes"] - b0
    return {"configured_rate": st["rate"], "seconds": round(secs, 3), "bytes": got,
            "mb_per_s": round(got / secs / 1e6, 2), "ratio": round(got / secs / st["rate"], 3) if st["rate"] else None}


def main():
    ap = fullsync.site_args(__doc__)
    ap.add_argument("--big-count", type=int, default=2048)
    ap.add_argument("--big-size", type=int, default=1048576)
    ap.add_argument("--small-count", type=int, default=20000)
    ap.add_argument("--small-size", type=int, default=4096)
    ap.add_argument("--paced-seconds", type=float, default=10)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    room = "%dMiB" % ((args.big_count * args.big_size + args.small_count * max(args.small_size, 65536)) * 13 // 10 //
                      1048576 + 256)
    site = ScrubSite(args, os.path.join(args.work, "s"), room, "0")
    out = {"big_count": args.big_count, "big_size": args.big_size, "small_count": args.small_count,
           "small_size": args.small_size}
    rc = 0
    try:
        site.start_storaged()
        out["fill_big"] = fullsync.do_fill(site.url, "scrub", args.big_count, args.big_size, 16, args.timeout)
        out["fill_small"] = fullsync.do_fill(site.url, "scrub-small", args.small_count, args.small_size, 64, args.timeout)
        fullsync.log("   filled: %d of %d B, %d of %d B" % (args.big_count, args.big_size, args.small_count, args.small_size))

        # the plain read before the pass and again after it, each after dropping the page cache: on a shared
        # machine (or a virtual disk its host caches) one read can be much slower than the other, so the bound the
        # pass is compared with is the faster of the two
        note = drop_caches()
        out["read_before"] = timed_read(site, "before")

        note = drop_caches() or note
        p = unpaced_pass(site, args.timeout)
        out["unpaced"] = p
        note = drop_caches() or note
        out["read_after"] = timed_read(site, "after")
        out["read"] = max(out["read_before"], out["read_after"], key=lambda r: r["mb_per_s"])  # the bound: the faster
        out["page_cache"] = note or "dropped before each read and before the pass"
        if note:
            fullsync.log("   NOTE: " + note)
        fullsync.log("   scrub pass, unpaced: %d objects, %.1f MB in %.2f s (its own %.2f s): %.1f MB/s, %.0f objects/s, "
                     "%.2fx the faster plain read; damaged %d" % (p["objects"], p["bytes"] / 1e6, p["seconds"], p["pass_seconds"],
                                                          p["mb_per_s"], p["objects_per_s"],
                                                          p["mb_per_s"] / out["read"]["mb_per_s"], p["damaged"]))
        if p["damaged"]:
            raise RuntimeError("the scrub found %d damaged objects in a fresh store" % p["damaged"])

        site.stop("storaged")
        site.scrub_rate = None  # the default
        site.start_storaged()
        q = paced_pass(site, args.paced_seconds)
        out["paced"] = q
        fullsync.log("   scrub pass at the default rate (%.1f MB/s): %.2f MB/s over %.1f s (%.2fx the configured rate)" %
                     (q["configured_rate"] / 1e6, q["mb_per_s"], q["seconds"], q["ratio"] or 0))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        out["error"] = str(e)
        fullsync.log("   scrub: FAILED: %s" % e)
        rc = 1
    finally:
        site.stop("storaged")
        fullsync.kill_all()
        write_json(args.out, out)
    return rc


if __name__ == "__main__":
    sys.exit(main())
