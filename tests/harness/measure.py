"""measure.py - figures and checks of replication between two sites, for the fault
tests that measure a link (test_wan.py, test_latency.py): lag of single PUTs, the
drain of a backlog, convergence against what the client was told."""

import math
import time

from . import replication
from .replication import converge_or_fail, payload

LARGE = 300_000  # above REPL_DEFAULTS["inline_threshold"] (64KB): B fetches it from A across the link
SMALL_MAX = 4096
LAG_TIMEOUT = 20.0  # one PUT must be readable on B within this
CONVERGE_TIMEOUT = 60.0
POLL = 0.02


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def ms(seconds):
    return "%.1f ms" % (seconds * 1e3)


def record_workload(w, client, rng, bucket, small, large, deletes):
    """small PUTs and `large` PUTs above the inline threshold in random order, then `deletes` of small keys.
    Every request must be acknowledged."""
    kinds = ["s"] * small + ["l"] * large
    rng.shuffle(kinds)
    keys = []
    for i, kind in enumerate(kinds):
        key = "%s%04d" % (kind, i)
        size = LARGE if kind == "l" else rng.randrange(16, SMALL_MAX)
        r = w.put(client, bucket, key, payload(key, size, rng))
        assert r is not None and r.status == 200, "PUT %s/%s (%d bytes) on A: %r" % (bucket, key, size, r)
        keys.append(key)
    for key in rng.sample([k for k in keys if k.startswith("s")], deletes):
        r = w.delete(client, bucket, key)
        assert r is not None and r.status == 204, "DELETE %s/%s on A: %r" % (bucket, key, r)
    return keys


def pending(site):
    return site.status()["events_pending"]


def wait_drained(site, timeout):
    """Polls A's replication status until no event is pending; returns the seconds it took."""
    t0 = time.monotonic()
    replication.wait_until(lambda: pending(site) == 0, timeout, interval=POLL,
                           what=lambda: "A's log to drain:\n" + site.describe())
    return time.monotonic() - t0


def check_converged(w, a, b, sample=64):
    """B lists what A lists (keys, sizes, ETags, bytes of a sample), and what the client was told."""
    converge_or_fail(a, b, timeout=CONVERGE_TIMEOUT, sample=sample)
    bad = w.check(b, "B")
    assert not bad, "B differs from what A acknowledged (%s):\n%s" % (w.summary(), "\n".join(bad))


def check_nothing_failed(a):
    st = a.status()
    assert st["events_failed"] == 0, "events counted as failed: %s\n%s" % (st, a.list_failed()[:10])
    assert a.list_failed() == [], a.list_failed()[:10]
    return st


def measure_lag(a, b, bucket, rng, samples):
    """`samples` PUTs of 1 KiB, one at a time: seconds from A's 200 until B answers the same ETag."""
    ca, cb = a.client(), b.client()
    lags = []
    for i in range(samples):
        key = "lag%03d" % i
        r = ca.put(bucket, key, payload(key, 1024, rng))
        t_put = time.monotonic()
        assert r.status == 200, "PUT %s/%s on A: %r" % (bucket, key, r)
        etag = r.header("ETag").strip('"')
        deadline = t_put + LAG_TIMEOUT
        while True:
            rb = cb.head(bucket, key)
            now = time.monotonic()
            if rb.status == 200 and (rb.header("ETag") or "").strip('"') == etag:
                lags.append(now - t_put)
                break
            assert rb.status in (200, 404), "HEAD %s/%s on B: %r" % (bucket, key, rb)
            assert now < deadline, "%s/%s not on B %.0f s after A's 200:\n%s" % (bucket, key, LAG_TIMEOUT,
                                                                                   a.describe())
            time.sleep(0.002)
    return lags


def measure_drain(a, b, w, rng, bucket, events):
    """Stops repld, writes a backlog (small PUTs, one large object in 50, deletes), starts repld and
    times until A has nothing pending. Returns (events in the backlog, seconds)."""
    a.stop_repld()
    ca = a.client()
    before = a.status()["log_head_seq"]
    n_large = max(1, events // 50)
    n_delete = events // 10
    record_workload(w, ca, rng, bucket, events - n_large - n_delete, n_large, n_delete)
    st = a.status()
    backlog = st["log_head_seq"] - before
    assert backlog == events and st["events_pending"] >= backlog, "a backlog of %d events expected: %s" % (events, st)
    t0 = time.monotonic()
    a.start_repld()
    wait_drained(a, CONVERGE_TIMEOUT)
    return backlog, time.monotonic() - t0
