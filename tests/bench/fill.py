#!/usr/bin/env python3
"""fill.py - PUT exactly COUNT objects of SIZE bytes to a site, CONNS at a time.

Used to build the replication backlog on site A while repld is stopped:
keys are PREFIX00000000, PREFIX00000001, ... in one bucket; every body is
distinct (its first 8 bytes are its index). Exits non-zero if any PUT does not
answer 200, or if the whole fill takes longer than --timeout seconds. Writes a
JSON summary (count, seconds, PUTs per second) to --out.
"""

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, HTTPError, write_json  # noqa: E402


async def fill(args):
    base = bytearray(os.urandom(args.size))
    state = {"next": 0, "done": 0, "errors": []}
    t_start = time.monotonic()
    last_report = [t_start]

    async def worker():
        c = Conn(args.url)
        try:
            while not state["errors"]:
                i = state["next"]
                if i >= args.count:
                    return
                state["next"] = i + 1
                body = bytearray(base)
                body[0:8] = i.to_bytes(8, "big")
                path = "/%s/%s%08d" % (args.bucket, args.prefix, i)
                try:
                    st, _, resp = await c.request("PUT", path, bytes(body))
                except (HTTPError, asyncio.TimeoutError) as e:
                    state["errors"].append("PUT %s: %s" % (path, e or "timed out"))
                    return
                if st != 200:
                    state["errors"].append("PUT %s: status %d: %s" % (path, st, resp[:200]))
                    return
                state["done"] += 1
                t = time.monotonic()
                if args.progress and t - last_report[0] >= args.progress:
                    last_report[0] = t
                    print("   fill: %d/%d PUTs, %.0f/s" % (state["done"], args.count, state["done"] / (t - t_start)),
                          flush=True)
        finally:
            c.close()

    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(args.conns))), args.timeout)
    except asyncio.TimeoutError:
        state["errors"].append("fill did not finish within %.0f s (%d of %d PUTs done)" %
                               (args.timeout, state["done"], args.count))
    return state, time.monotonic() - t_start


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--url", required=True)
    ap.add_argument("--bucket", default="drain")
    ap.add_argument("--prefix", default="obj-")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--progress", type=float, default=10, help="print progress every N seconds (0: never)")
    ap.add_argument("--out")
    args = ap.parse_args()
    state, secs = asyncio.run(fill(args))
    res = {"count": args.count, "done": state["done"], "size": args.size, "conns": args.conns,
           "seconds": round(secs, 3), "puts_per_s": round(state["done"] / secs, 1) if secs > 0 else None,
           "errors": state["errors"][:5]}
    if args.out:
        write_json(args.out, res)
    if state["errors"]:
        print("fill: FAILED: %s" % "; ".join(state["errors"][:3]), file=sys.stderr)
        return 1
    print("   fill: %d PUTs of %d B in %.2f s (%.0f PUT/s, %d connections)" %
          (state["done"], args.size, secs, res["puts_per_s"] or 0, args.conns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
