#!/usr/bin/env python3
"""lag.py - replication lag from site A to site B, as a client sees it.

  lag.py small --a URL --b URL [--count 1000 --rate 100 --size 4096]
      PUTs COUNT distinct objects to A at a steady RATE per second (each PUT
      starts on its own schedule, whatever the previous ones are doing). For
      each, as soon as A answers 200, it polls B with GET in a tight loop (no
      sleep) until B answers 200 with the ETag A gave. The lag of the object
      is the time from A's 200 to B's 200.

  lag.py big --a URL --b URL [--size 104857600 --repeat 3]
      PUTs one large object to A, then polls B with HEAD until it answers 200
      with the right ETag: the lag is from A's 200 to that answer. Then GETs
      it from B and checks the MD5 of the bytes (not timed). Repeated REPEAT
      times with distinct keys, one after the other.

Both write their figures (milliseconds) to --out as JSON and exit non-zero
when an object is not on B within --timeout seconds of its PUT.
"""

import argparse
import asyncio
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, HTTPError, Pool, etag_of, pct, write_json  # noqa: E402


def summary_ms(values):
    if not values:
        return {}
    return {"n": len(values), "p50_ms": round(pct(values, 50) * 1e3, 3), "p90_ms": round(pct(values, 90) * 1e3, 3),
            "p99_ms": round(pct(values, 99) * 1e3, 3), "max_ms": round(max(values) * 1e3, 3),
            "mean_ms": round(sum(values) / len(values) * 1e3, 3)}


async def small(args):
    pa, pb = Pool(args.a), Pool(args.b)
    base = bytearray(os.urandom(args.size))
    lags, put_lat, polls, late, errors, samples = [], [], [], [], [], []
    stamp = "%x" % int(time.time() * 1000)

    async def one(i):
        body = bytearray(base)
        body[0:8] = i.to_bytes(8, "big")
        body = bytes(body)
        path = "/%s/%s-%06d" % (args.bucket, stamp, i)
        ca = pa.take()
        t_start = time.perf_counter()
        try:
            st, h, resp = await ca.request("PUT", path, body)
        except (HTTPError, asyncio.TimeoutError) as e:
            errors.append("PUT %s: %s" % (path, e or "timed out"))
            return
        finally:
            pa.give(ca)
        t_put = time.perf_counter()
        if st != 200:
            errors.append("PUT %s on A: status %d %s" % (path, st, resp[:200]))
            return
        put_lat.append(t_put - t_start)
        etag = etag_of(h)
        cb = pb.take()
        n = 0
        try:
            while True:
                n += 1
                st, h, _ = await cb.request("GET", path)
                t = time.perf_counter()
                if st == 200 and etag_of(h) == etag:
                    lags.append(t - t_put)
                    polls.append(n)
                    samples.append((round(t_start - t_begin, 4), round((t_put - t_start) * 1e3, 3),
                                    round((t - t_put) * 1e3, 3)))
                    return
                if st not in (200, 404):
                    errors.append("GET %s on B: status %d" % (path, st))
                    return
                if t - t_put > args.timeout:
                    late.append(path)
                    return
                if args.poll_gap:
                    await asyncio.sleep(args.poll_gap)
                else:
                    await asyncio.sleep(0)  # let the other objects' probes and the schedule run
        except (HTTPError, asyncio.TimeoutError) as e:
            errors.append("GET %s on B: %s" % (path, e or "timed out"))
        finally:
            pb.give(cb)

    # warm the connections: one object end to end, not counted
    warm = pa.take()
    st, _, _ = await warm.request("PUT", "/%s/%s-warm" % (args.bucket, stamp), b"w")
    pa.give(warm)
    if st != 200:
        return {"error": "warm-up PUT on A answered %d" % st}
    t_begin = time.perf_counter()
    tasks = []
    slips = 0
    for i in range(args.count):
        due = t_begin + i / args.rate
        d = due - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        elif d < -0.005:
            slips += 1
        tasks.append(asyncio.ensure_future(one(i)))
        if errors:
            break
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t_begin
    pa.close()
    pb.close()
    res = {"count": args.count, "rate": args.rate, "size": args.size, "measured": len(lags),
           "offered_rate": round(len(tasks) / elapsed, 1), "schedule_slips_over_5ms": slips,
           "lag": summary_ms(lags), "put_latency": summary_ms(put_lat),
           "polls_p50": pct(polls, 50), "polls_max": max(polls) if polls else None,
           "late": len(late), "errors": errors[:5],
           "samples": sorted(samples)}  # [seconds since the first PUT, PUT ms on A, lag ms] per object
    if errors or late:
        res["error"] = "; ".join(errors[:3] + (["%d objects not on B within %.0f s" % (len(late), args.timeout)]
                                                if late else []))
    return res


async def big(args):
    a, b = Conn(args.a, timeout=args.timeout), Conn(args.b, timeout=args.timeout)
    runs, errors = [], []
    stamp = "%x" % int(time.time() * 1000)
    for r in range(args.repeat):
        body = os.urandom(args.size)
        md5 = hashlib.md5(body).hexdigest()
        path = "/%s/%s-big-%d" % (args.bucket, stamp, r)
        t_start = time.perf_counter()
        try:
            st, h, resp = await a.request("PUT", path, body)
        except (HTTPError, asyncio.TimeoutError) as e:
            errors.append("PUT %s on A: %s" % (path, e or "timed out"))
            break
        t_put = time.perf_counter()
        if st != 200 or etag_of(h) != md5:
            errors.append("PUT %s on A: status %d, ETag %s (expected %s) %s" % (path, st, etag_of(h), md5, resp[:200]))
            break
        n, t_seen = 0, None
        while True:
            n += 1
            try:
                st, h, _ = await b.request("HEAD", path)
            except (HTTPError, asyncio.TimeoutError) as e:
                errors.append("HEAD %s on B: %s" % (path, e or "timed out"))
                break
            t = time.perf_counter()
            if st == 200 and etag_of(h) == md5:
                t_seen = t
                break
            if t - t_put > args.timeout:
                errors.append("%s not on B with ETag %s within %.0f s (last status %d)" % (path, md5, args.timeout, st))
                break
            await asyncio.sleep(args.poll_gap)
        if t_seen is None:
            break
        st, h, data = await b.request("GET", path)
        ok = st == 200 and hashlib.md5(data).hexdigest() == md5
        if not ok:
            errors.append("GET %s on B: status %d, bytes %s" % (path, st, "differ" if st == 200 else "-"))
        runs.append({"put_s": round(t_put - t_start, 3), "lag_ms": round((t_seen - t_put) * 1e3, 1), "polls": n,
                     "bytes_verified": ok})
        del body, data
    a.close()
    b.close()
    lags = [x["lag_ms"] for x in runs]
    res = {"size": args.size, "repeat": args.repeat, "runs": runs}
    if lags:
        res.update(lag_ms_median=sorted(lags)[len(lags) // 2], lag_ms_max=max(lags), lag_ms_min=min(lags),
                   put_s_median=sorted(x["put_s"] for x in runs)[len(runs) // 2])
    if errors:
        res["error"] = "; ".join(errors[:3])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("mode", choices=("small", "big"))
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--bucket", default="lag")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--size", type=int)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--poll-gap", type=float, default=None,
                    help="seconds between two polls of B (default: 0 for small, 0.001 for big)")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.size is None:
        args.size = 4096 if args.mode == "small" else 100 * 1024 * 1024
    if args.poll_gap is None:
        args.poll_gap = 0.0 if args.mode == "small" else 0.001
    try:
        res = asyncio.run(small(args) if args.mode == "small" else big(args))
    except (HTTPError, asyncio.TimeoutError, OSError) as e:
        res = {"error": "lag %s: %s" % (args.mode, e or "timed out")}
    res["ok"] = not res.get("error")
    write_json(args.out, res)
    if not res["ok"]:
        print("lag %s: FAILED: %s" % (args.mode, res["error"]), file=sys.stderr)
        return 1
    if args.mode == "small":
        l = res["lag"]
        print("   lag of %d PUTs of %d B at %.0f/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (PUT on A: p50 %.2f ms)" %
              (l["n"], args.size, res["offered_rate"], l["p50_ms"], l["p99_ms"], l["max_ms"],
               res["put_latency"]["p50_ms"]))
    else:
        print("   lag of a %d MiB object: %s ms (PUT on A took %s s)" %
              (args.size >> 20, ", ".join("%.0f" % x["lag_ms"] for x in res["runs"]),
               ", ".join("%.2f" % x["put_s"] for x in res["runs"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
