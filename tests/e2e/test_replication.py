"""test_replication.py - replication from a primary site A to a replica B, end to end.

Real storaged and repld binaries on loopback: A ships its log to B (or to
fake_replica.FakeReplica, which misbehaves on purpose). The oracle is
independent of the daemons' counters: replication.snapshot()/diff() list both
sites through the HTTP API, and replication.Workload knows what the client was
acknowledged. Every wait is bounded; figures measured are printed (pytest -s),
never asserted.
"""

import hashlib
import hmac
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness import comio
from harness.comio import md5
from harness.fake_replica import FakeReplica
from harness.replication import (REPL_DEFAULTS, Site, TcpProxy, Workload, Writer, comio_path, converge_or_fail, diff,
                                 diff_snapshots, finish_sites, make_test_ca, new_token, payload, snapshot, repld_path,
                                 wait_converged, wait_until)


CONVERGE_TIMEOUT = 60.0
HINT_401 = "remote rejected the token"
EVENT_ID = re.compile(r"^(-?\d+)-([a-z0-9.-]+?)-(.+)$")


def retry_window_s(repl=None):
    """retry_attempts x retry_delay of a replication block, in seconds."""
    conf = dict(REPL_DEFAULTS, **(repl or {}))
    return conf["retry_attempts"] * int(conf["retry_delay"].rstrip("ms")) / 1000.0


def get_ok(client, bucket, key):
    r = client.get(bucket, key)
    return r if r.status == 200 else None


def objects_in(snap):
    return sum(len(o) for o in snap.values())


def check_recorded(w, site, what):
    d = w.check(site, what)
    assert not d, "%s does not hold what the client was acknowledged (%s):\n%s" % (what, w.summary(), "\n".join(d))


def log_events(site, msg):
    return [e for e in site.repld.log_json() if e.get("msg") == msg]


def mixed_writer(w, bucket, tid, nkeys, seed, delete_ratio=0.2, max_size=3000):
    """A writer function on keys of its own (t<tid>/...): PUTs of random sizes and some DELETEs."""
    rng = random.Random(seed)

    def fn(c, i):
        key = "t%d/k%04d" % (tid, rng.randrange(nkeys))
        if rng.random() < delete_ratio:
            r = w.delete(c, bucket, key)
        else:
            r = w.put(c, bucket, key, payload("%d-%d" % (tid, i), rng.randrange(1, max_size), rng))
        if r is None:  # the site is down: do not spin
            time.sleep(0.02)

    return fn


def run_writers(site, w, bucket, nthreads, per_thread, nkeys=200, seed=0, **kw):
    ws = [Writer(site, mixed_writer(w, bucket, t, nkeys, seed * 100 + t, **kw), count=per_thread)
          for t in range(nthreads)]
    for x in ws:
        x.start()
    return ws


def join_all(writers, timeout=120):
    for x in writers:
        x.join_checked(timeout)


# --- the oracle itself ----------------------------------------------------------------------------------------------


def test_checker_reports_differences(sites):
    """The convergence checker and the workload record can fail: with repld stopped, every
    kind of difference shows."""
    a, b = sites(repld=False)
    ca, cb = a.client(), b.client()
    w = Workload()
    assert w.put(ca, "check", "only-on-a", b"a").status == 200
    assert cb.put("check", "only-on-b", b"b").status == 200
    assert ca.put("check", "both", b"one").status == 200
    assert cb.put("check", "both", b"two").status == 200
    assert w.put(ca, "other", "k", b"x").status == 200
    assert w.delete(ca, "other", "k").status == 204
    assert cb.put("other", "k", b"resurrected").status == 200
    d = diff(a, b)
    print("\n".join(d))
    # the two oracles, comio diff (for sites) and the Python snapshots, agree word for word
    assert d == diff_snapshots(snapshot(a), snapshot(b)), (d, diff_snapshots(snapshot(a), snapshot(b)))
    assert any("only-on-a" in x and "missing on B" in x for x in d), d
    assert any("only-on-b" in x and "missing on A" in x for x in d), d
    assert any("check/both" in x and "!=" in x for x in d), d
    assert any("other/k" in x for x in d), d
    assert wait_converged(a, b, timeout=0.5, quiet=True) == d
    assert w.check(a, "A") == []
    wd = w.check(b, "B")
    assert any("check/only-on-a" in x and "missing on B" in x for x in wd), wd
    assert any("other/k" in x and "deleted" in x for x in wd), wd
    a.start_repld()  # A's events now reach B; B's own writes are not A's business (docs/replication.md)
    cb2 = b.client()
    wait_until(lambda: get_ok(cb2, "check", "only-on-a"), 30, what="A's events on B")
    wait_until(lambda: a.status()["log_pending"] == 0, 30, what="A's log drained")
    d = wait_converged(a, b, timeout=1, quiet=True)
    assert any("only-on-b" in x for x in d), d
    assert all(any(k in x for k in ("only-on-b", "check/both", "other/k")) for x in d), d


# --- the seed's "Test Replication" ----------------------------------------------------------------------------------


def test_seed_flow_put_delete_purge(sites):
    a, b = sites()
    ca, cb = a.client(), b.client()
    data = os.urandom(12345)
    r = ca.put("mybucket", "myfile", data, {"Content-Type": "application/octet-stream"})
    assert r.status == 200, r

    got = wait_until(lambda: get_ok(cb, "mybucket", "myfile"), 30, what=lambda: "myfile on B\n" + b.describe())
    assert got.body == data
    assert got.headers["ETag"] == r.headers["ETag"] == '"%s"' % md5(data)
    assert got.headers["Content-Type"] == "application/octet-stream"

    assert ca.delete("mybucket", "myfile").status == 204
    wait_until(lambda: cb.get("mybucket", "myfile").status == 404, 30, what="myfile deleted on B")

    for i in range(20):
        assert ca.put("mybucket", "obj-%02d" % i, b"content %d" % i).status == 200
    wait_until(lambda: len(snapshot(b).get("mybucket", {})) == 20, 30, what="20 objects on B")
    r = ca.purge("mybucket")
    assert r.status == 200 and r.json()["deleted_count"] == 20, r
    wait_until(lambda: not snapshot(b).get("mybucket"), 30, what=lambda: "mybucket emptied on B\n" + b.describe())
    lb = cb.list("mybucket")
    assert lb.status == 404 or lb.json()["objects"] == [], lb
    converge_or_fail(a, b)

    st = wait_until(lambda: (lambda s: s if s["log_pending"] == 0 else None)(a.status()), 20,
                    what="A's log drained")
    assert st["enabled"] is True and st["events_failed"] == 0, st
    print("A status after the seed flow:", st)


# --- sizes ----------------------------------------------------------------------------------------------------------


def test_small_and_large_objects_byte_for_byte(sites):
    # inline_threshold is 64KB = 64000 bytes: below travels in the batch, at or above is fetched from A
    a, b = sites()
    ca = a.client()
    rng = random.Random(7)
    sizes = [0, 1, 4096, 63999, 64000, 64001, 1_000_000, 3_000_001, 5 * 1024 * 1024]
    keys = {}
    for i, size in enumerate(sizes):
        keys["sizes/%02d-%d" % (i, size)] = payload("s%d" % i, size, rng)
    # names that need escaping, in the batch and in a presigned URL
    keys["odd/dir/spaced name+plus%25.bin"] = payload("odd1", 100_000, rng)
    keys["odd/ключ/ü?a#b&c=d"] = payload("odd2", 2000, rng)
    keys["odd/~tilde'quote(1).bin"] = payload("odd3", 70_000, rng)
    keys["long/" + "k" * 1019] = payload("long1", 5000, rng)  # 1024 bytes, the longest key
    keys["long/" + "é" * 509 + "x"] = payload("long2", 100_000, rng)  # 1024 bytes that escape to 3 KB in a URL
    ctypes = {"sizes/04-64000": "video/mp4", "sizes/01-1": "text/plain; charset=utf-8"}
    t0 = time.monotonic()
    for k, data in keys.items():
        r = ca.put("blobs", k, data, {"Content-Type": ctypes.get(k, "application/octet-stream")})
        assert r.status == 200, (k, r)
    longbucket = "b" * 63
    assert ca.put(longbucket, "k", b"in the longest bucket name").status == 200
    converge_or_fail(a, b, sample=None)
    total = sum(len(d) for d in keys.values())
    took = time.monotonic() - t0
    print("replicated %d objects, %.1f MB, in %.2f s (%.1f MB/s)" % (len(keys), total / 1e6, took, total / 1e6 / took))

    cb = b.client()
    for k, ct in ctypes.items():
        assert cb.head("blobs", k).headers["Content-Type"] == ct, k

    # overwrites across the threshold, both ways, and a large delete
    big = sorted(k for k, d in keys.items() if len(d) >= 1_000_000)
    small = sorted(k for k, d in keys.items() if len(d) < 64000)
    assert ca.put("blobs", big[0], payload("now-small", 10, rng)).status == 200
    assert ca.put("blobs", small[1], payload("now-big", 2_500_000, rng)).status == 200
    assert ca.put("blobs", big[1], payload("other-big", 4_000_000, rng)).status == 200
    assert ca.delete("blobs", big[2]).status == 204
    converge_or_fail(a, b, sample=None)
    assert cb.get("blobs", big[2]).status == 404


# --- concurrency on the same keys -----------------------------------------------------------------------------------


def test_overwrite_storm_on_one_key(sites):
    a, b = sites()
    w = Workload()
    rngs = [random.Random(100 + t) for t in range(4)]

    def storm(t):
        def fn(c, i):  # sizes on both sides of inline_threshold (64KB)
            w.put(c, "storm", "the-key", payload("t%d-%d" % (t, i), rngs[t].randrange(1, 90_000), rngs[t]))
        return fn

    ws = [Writer(a, storm(t), count=50) for t in range(4)]
    for x in ws:
        x.start()
    join_all(ws)
    assert w.counts["put"] == 200, w.summary()
    present, absent, ambiguous = w.expected()
    assert list(present) == [("storm", "the-key")] and not ambiguous, w.summary()
    converge_or_fail(a, b, sample=None)
    check_recorded(w, a, "A")
    check_recorded(w, b, "B")
    r = b.client().get("storm", "the-key")
    assert md5(r.body) == present[("storm", "the-key")][1]


def test_put_delete_flapping_deletes_stay_deleted(sites):
    a, b = sites()
    w = Workload()
    keys = ["flap-%d" % i for i in range(6)]
    rng = random.Random(3)

    def flapper(mine, final_present):
        def fn(c, i):
            for k in mine:
                w.put(c, "flap", k, payload("%s-%d" % (k, i), rng.randrange(1, 5000), rng))
                w.delete(c, "flap", k)
            if i == 99:  # the last round leaves some keys present
                for k in mine[:final_present]:
                    w.put(c, "flap", k, payload("%s-final" % k, 777, rng))
        return fn

    ws = [Writer(a, flapper(keys[:3], 1), count=100), Writer(a, flapper(keys[3:], 2), count=100)]
    for x in ws:
        x.start()
    join_all(ws)
    present, absent, ambiguous = w.expected()
    assert len(present) == 3 and len(absent) == 3 and not ambiguous, w.summary()
    converge_or_fail(a, b)
    check_recorded(w, b, "B")

    # deletes stay deleted across restarts of both daemons of A and of B
    a.stop_repld()
    b.stop_storaged()
    b.start_storaged()
    a.start_repld()
    assert a.client().put("flap", "after-restart", b"x").status == 200
    converge_or_fail(a, b)
    check_recorded(w, b, "B after restarts")


def test_purge_racing_puts(sites):
    a, b = sites()
    w = Workload()
    stop = threading.Event()
    rngs = [random.Random(50 + t) for t in range(3)]

    def putter(t):
        def fn(c, i):  # sizes on both sides of inline_threshold (64KB)
            size = rngs[t].choice((rngs[t].randrange(1, 4000), rngs[t].randrange(64000, 150_000)))
            w.put(c, "race", "t%d-%03d" % (t, i % 60), payload("%d-%d" % (t, i), size, rngs[t]))
        return fn

    ws = [Writer(a, putter(t)) for t in range(3)]
    for x in ws:
        x.start()
    c = a.client()
    purged = []
    for _ in range(8):
        stop.wait(0.15)
        r = w.purge(c, "race")
        assert r is not None and r.status in (200, 404), r
        if r.status == 200:
            purged.append(r.json()["deleted_count"])
    stop.wait(0.3)  # PUTs after the last purge
    for x in ws:
        x.stop()
    join_all(ws)
    print("purges removed %s objects; %s" % (purged, w.summary()))
    assert sum(purged) > 0, "the purges raced nothing"
    converge_or_fail(a, b)
    check_recorded(w, a, "A")
    check_recorded(w, b, "B")
    assert snapshot(b).get("race"), "nothing written after the last purge survived on B"


# --- crashes --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_repld_stopped_mid_stream(sites, how):
    a, b = sites(repld=False, a_repl={"batch_size": 50})
    w = Workload()
    join_all(run_writers(a, w, "crash", 4, 750, nkeys=300, seed=1))  # 3000 events waiting in A's log
    pending0 = a.status()["log_pending"]
    assert pending0 >= 2500, a.status()

    a.start_repld()
    more = run_writers(a, w, "crash", 2, 400, nkeys=300, seed=2)  # and more while it streams
    st = wait_until(lambda: (lambda s: s if s["events_replicated"] >= 100 else None)(a.status()), 30, interval=0.005,
                    what=lambda: "B receiving\n" + a.describe())
    pending = st["log_pending"]
    if how == "kill9":
        a.kill9_repld()
    else:
        assert a.stop_repld() == 0
    print("stopped repld (%s) with %d events pending in A's log" % (how, pending))
    assert pending > 0, "the stream had already drained: the kill tested nothing"
    join_all(more)
    join_all(run_writers(a, w, "crash", 2, 200, nkeys=300, seed=3))  # writes while repld is down

    total = a.status()["log_pending"]
    t0 = time.monotonic()
    a.start_repld()
    converge_or_fail(a, b)
    took = time.monotonic() - t0
    print("after restart: %d pending events drained in %.2f s (%.0f events/s)" % (total, took, total / took))
    check_recorded(w, a, "A")
    check_recorded(w, b, "B")
    assert a.status()["events_failed"] == 0


@pytest.mark.parametrize("victim", ["primary", "replica"])
def test_kill9_storaged_mid_stream(sites, victim):
    a, b = sites(a_repl={"batch_size": 50})
    site = a if victim == "primary" else b
    w = Workload()
    # objects fetched from A are left to test_primary_down_while_large_objects_ship
    max_size = 3000 if victim == "primary" else 150_000
    writers = run_writers(a, w, "crash", 3, None, nkeys=200, seed=4, max_size=max_size)
    wait_until(lambda: objects_in(snapshot(b)) >= 50, 30, what=lambda: "B receiving\n" + a.describe())
    site.kill9_storaged()
    print("killed storaged of %s after %d client ops" % (site.site_id, sum(x.done for x in writers)))
    time.sleep(0.5)  # down for a while: writes fail or pile up, repld backs off
    site.start_storaged()
    before = sum(x.done for x in writers)
    wait_until(lambda: sum(x.done for x in writers) >= before + 300, 30, what="writes after the restart")
    for x in writers:
        x.stop()
    join_all(writers)
    print(w.summary())
    converge_or_fail(a, b)
    check_recorded(w, a, "A")
    check_recorded(w, b, "B")
    assert a.status()["events_failed"] == 0


def test_primary_down_while_large_objects_ship(sites):
    """A's storaged is down (crashed, or restarting) while repld ships PUTs that B must fetch
    from it: once A is back everything arrives, with no operator action."""
    a, b = sites(repld=False)
    ca = a.client()
    w = Workload()
    rng = random.Random(21)
    for i in range(30):
        assert w.put(ca, "fetchme", "big-%02d" % i, payload(i, rng.randrange(64000, 400_000), rng)).status == 200
    a.kill9_storaged()
    a.start_repld()  # ships the events; B cannot fetch the bytes while A is down
    time.sleep(max(3 * retry_window_s(), 2.0))
    a.start_storaged()
    d = wait_converged(a, b, timeout=20)
    failed = a.list_failed()
    print("after A came back: %d differences, %d failed events: %s" % (len(d), len(failed), failed[:2]))
    assert not failed and a.status()["events_failed"] == 0, \
        "events failed while A's storaged was down: %d, e.g. %s" % (len(failed), failed[:1])
    assert not d, "\n".join(d[:20])
    check_recorded(w, b, "B")


# --- outages --------------------------------------------------------------------------------------------------------


def test_replica_down_longer_than_retries(sites):
    a, b = sites()
    w = Workload()
    ca = a.client()
    for i in range(20):
        assert w.put(ca, "outage", "before-%02d" % i, b"before %d" % i).status == 200
    converge_or_fail(a, b)

    b.stop_storaged()
    down_for = max(3 * retry_window_s(), 2.0)
    t0 = time.monotonic()
    rng = random.Random(9)
    i = 0
    while time.monotonic() - t0 < down_for:  # A keeps taking writes: none is refused or blocked
        r = w.put(ca, "outage", "during-%03d" % (i % 150), payload(i, rng.randrange(1, 100_000), rng))
        assert r is not None and r.status == 200, r
        if i % 7 == 0:
            assert w.delete(ca, "outage", "before-%02d" % (i % 20)).status == 204
        i += 1
    # status tells the truth while the replica is away
    st = a.repld_status()
    print("while B is down (%d writes): %s" % (i, json.dumps(st)))
    assert st["events_pending"] > 0 and st["lag_seconds"] > 0, st
    assert st["remote"]["state"] != "up", st
    assert st["events_failed"] == 0 and a.status()["events_failed"] == 0, st

    b.start_storaged()
    converge_or_fail(a, b)
    check_recorded(w, b, "B")
    st = a.status()
    assert st["events_failed"] == 0, st
    assert a.list_failed() == []
    assert wait_until(lambda: a.repld_status()["events_pending"] == 0, 20, what="pending back to 0")


@pytest.mark.parametrize("heal", ["resume", "reset"])
def test_network_partition(sites, heal):
    """A partition (bytes stop, connections stay open: silence, not errors) while A takes
    writes; healed by letting the held bytes through, or by resetting every connection."""
    a, b = sites(start=False)
    b.start()
    proxy = TcpProxy(b.port)
    try:
        a.repl["remote_url"] = proxy.url
        a.write_config()
        a.start()
        w = Workload()
        ca = a.client()
        for i in range(20):
            assert w.put(ca, "part", "before-%02d" % i, b"before %d" % i).status == 200
        converge_or_fail(a, b)
        before = snapshot(b)

        proxy.partition()
        t0 = time.monotonic()
        rng = random.Random(13)
        i = 0
        while time.monotonic() - t0 < max(3 * retry_window_s(), 2.0):
            r = w.put(ca, "part", "during-%03d" % (i % 100), payload(i, rng.randrange(1, 30_000), rng))
            assert r is not None and r.status == 200, r
            if i % 5 == 0:
                assert w.delete(ca, "part", "before-%02d" % (i % 20)).status == 204
            i += 1
        assert snapshot(b) == before, "bytes crossed the partition"
        st = a.status()
        print("partitioned for %.1f s, %d writes on A: %s" % (time.monotonic() - t0, i, st))
        assert st["log_pending"] > 0 and st["events_failed"] == 0, st

        proxy.heal(reset=(heal == "reset"))
        converge_or_fail(a, b)
        check_recorded(w, b, "B")
        assert a.status()["events_failed"] == 0 and a.list_failed() == []
        print("proxy connections made: %d" % proxy.connections)
    finally:
        proxy.heal()
        a.stop_repld()
        proxy.close()


def test_objects_written_before_replication_reach_the_replica(sites):
    """The new target gets a full sync (repld/sync.h): what the log never held ships too."""
    a, b = sites(start=False)
    a.repl["enabled"] = False
    a.write_config()
    b.start()
    a.start(repld=False)
    ca = a.client()
    for i in range(10):
        assert ca.put("early", "k%d" % i, b"written before replication %d" % i).status == 200
    a.stop_storaged()
    a.repl["enabled"] = True
    a.write_config()
    a.start()
    assert a.client().put("early", "late", b"written after").status == 200
    d = wait_converged(a, b, timeout=10)
    assert not d, "\n".join(d)


def test_mistaken_write_on_replica_is_overwritten_by_later_write_on_primary(sites):
    """docs/replication.md, Limits: B should not take writes of its own, "they are not
    replicated and A's later writes overwrite them"."""
    a, b = sites()
    ca, cb = a.client(), b.client()
    assert ca.put("mistake", "early", b"from A").status == 200
    converge_or_fail(a, b)
    for i in range(30):  # B's own writes: its version counter runs ahead of A's
        assert cb.put("mistake", "b-only-%02d" % i, b"local").status == 200
    rb = cb.put("mistake", "k", b"written on B by mistake")
    assert rb.status == 200
    # Neither site saw the other's write: last-writer-wins orders them by (version, origin). Written in the same
    # millisecond both versions can be equal, and then "site-b" > "site-a" wins: A's write is later only once
    # the wall clock has moved on (the test needs that order, LWW does not).
    threading.Event().wait(0.01)
    later = b"written on A afterwards"
    ra = ca.put("mistake", "k", later)
    assert ra.status == 200
    assert int(ra.headers["X-Comio-Version"]) > int(rb.headers["X-Comio-Version"]), (ra.headers, rb.headers)
    wait_until(lambda: a.status()["log_pending"] == 0, 20, what="A's log drained")
    got = wait_until(lambda: (lambda r: r if r and r.body == later else None)(get_ok(cb, "mistake", "k")), 10,
                     what=lambda: "A's later write of mistake/k on B (B holds %r, version %s; A's version %s)" % (
                         cb.get("mistake", "k").body, cb.get("mistake", "k").headers.get("X-Comio-Version"),
                         ca.get("mistake", "k").headers.get("X-Comio-Version")))
    assert got.body == later


# --- against a misbehaving receiver ---------------------------------------------------------------------------------


@pytest.fixture
def fake_primary(tmp_path):
    """fake_primary(fake_kw=None, **repl) -> (A, FakeReplica): site A ships to a scripted receiver."""
    made = []

    def make(fake_kw=None, **repl):
        token = new_token()
        fake = FakeReplica(token=token, **(fake_kw or {}))
        conf = {"remote_url": fake.url, "remote_token": token}
        conf.update(repl)
        a = Site(tmp_path / ("a%d" % len(made)), "site-a", repl=conf)
        made.append((a, fake))
        a.start()
        return a, fake

    yield make
    problems = []
    for a, fake in made:
        problems += finish_sites([a])
        fake.close()
        problems += ["fake replica saw a bad batch: %s" % e for e in fake.errors]
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def wait_fake_converged(a, fake, timeout=CONVERGE_TIMEOUT):
    """Waits until the fake holds what A lists and A's log is drained (every event acknowledged
    or superseded: the fake may hold an event whose reply repld could not use)."""
    t0 = time.monotonic()
    d = []
    while time.monotonic() - t0 < timeout:
        d = diff_snapshots(snapshot(a), fake.snapshot(), names=("A", "fake"))
        if not d:
            pending = a.status()["log_pending"]
            if pending == 0:
                print("fake converged after %.2f s" % (time.monotonic() - t0))
                return
            d = ["A's log still holds %d events" % pending]
        time.sleep(0.1)
    raise AssertionError("fake replica not converged:\n%s\n%s" % ("\n".join(d[:30]), a.describe()))


@pytest.mark.parametrize("repld_during_retry", ["running", "stopped"])
def test_failed_events_listed_logged_and_redriven(fake_primary, repld_during_retry):
    a, fake = fake_primary()
    bad = {("fails", "bad-1"), ("fails", "bad-2"), ("fails", "bad-3")}
    fake.set_retry_keys(bad)
    ca = a.client()
    for i in range(10):
        assert ca.put("fails", "good-%d" % i, b"good %d" % i).status == 200
    assert ca.put("fails", "bad-1", b"bad one").status == 200
    assert ca.put("fails", "bad-2", b"bad two").status == 200
    assert ca.put("fails", "bad-3", b"bad three").status == 200
    assert ca.delete("fails", "bad-3").status == 204

    failed = wait_until(lambda: (lambda f: f if len(f) >= 3 else None)(a.list_failed()), 30,
                        what=lambda: "3 failed events\n" + a.describe())
    assert len(failed) == 3, failed
    attempts_expected = REPL_DEFAULTS["retry_attempts"] + 1
    for f in failed:
        m = EVENT_ID.match(f["event_id"])
        assert m, f
        assert (m.group(2), m.group(3)) in bad, f
        seen = [e for e in fake.seen_seqs() if e == f["seq"]]
        ev = next(e for e in fake.events_for(m.group(2), m.group(3)) if e["seq"] == f["seq"])
        assert f["event_id"] == "%d-%s-%s" % (ev["mtime"], ev["bucket"], ev["key"]), (f, ev)
        assert "507" in f["error"], f
        assert f["attempts"] == attempts_expected == len(seen), (f, len(seen))
    assert sorted(f["op"].lower() for f in failed) == ["delete", "put", "put"], failed

    # the seed's log line, one per failed event
    lines = log_events(a, "Failed to replicate event")
    assert sorted(e["event_id"] for e in lines) == sorted(f["event_id"] for f in failed), lines
    for e in lines:
        assert e["level"] == "error" and "507" in e["error"], e

    # counted, and the others were not held back
    assert a.status()["events_failed"] == 3
    assert a.repld_status()["events_failed"] == 3
    assert {k for k in fake.snapshot().get("fails", {})} >= {"good-%d" % i for i in range(10)}

    # one command re-drives them once the replica is fixed
    fake.set_retry_keys(())
    if repld_during_retry == "stopped":
        a.stop_repld()
    out = a.retry_failed()
    assert "3 failed event(s) put back" in out, out
    assert a.list_failed() == [] and a.status()["events_failed"] == 0
    if repld_during_retry == "stopped":
        a.start_repld()
    seqs = {f["seq"] for f in failed}
    wait_until(lambda: seqs <= fake.acked_seqs(), 30, what=lambda: "re-driven events acknowledged\n" + a.describe())
    assert a.list_failed() == []
    assert a.status()["events_failed"] == 0
    wait_fake_converged(a, fake)


@pytest.mark.parametrize("mode", ["slow", "drop", "http500", "partial", "malformed", "wrongseq"])
def test_misbehaving_receiver_loses_nothing(fake_primary, mode):
    a, fake = fake_primary()
    fake.set_mode(mode, count=1 if mode == "slow" else 4, delay=1.5)
    w = Workload()
    writers = run_writers(a, w, "mis", 2, 60, nkeys=40, seed=11, max_size=20_000)
    join_all(writers)
    wait_fake_converged(a, fake)
    check_recorded(w, fake.snapshot(), "the fake replica")
    log = fake.request_log()
    bad = [r for r in log if r[1] == mode]
    print("%s: %d requests, %d misbehaved, %d events seen for %d distinct" %
          (mode, len(log), len(bad), len(fake.seen_seqs()), len(set(fake.seen_seqs()))))
    assert bad, "the receiver never misbehaved: %r" % log
    if mode in ("partial", "malformed", "wrongseq"):  # applied but not acknowledged: must come again
        assert len(fake.seen_seqs()) > len(set(fake.seen_seqs())), "nothing was re-sent"
    assert a.status()["events_failed"] == 0
    assert a.list_failed() == []


def test_unauthorized_receiver_gives_hint_and_loses_nothing(fake_primary):
    a, fake = fake_primary()
    fake.set_mode("unauthorized")
    ca = a.client()
    for i in range(5):
        assert ca.put("auth", "k%d" % i, b"v%d" % i).status == 200
    hint = wait_until(lambda: [e for e in a.repld.log_json() if HINT_401 in e.get("msg", "")], 15,
                      what=lambda: "the 401 hint\n" + a.describe())
    assert hint[0]["level"] == "error", hint
    st = a.repld_status()
    assert "401" in st["remote"]["last_error"], st
    assert st["events_failed"] == 0 and a.list_failed() == [], st
    fake.set_mode("ok")
    wait_fake_converged(a, fake)
    assert a.status()["events_failed"] == 0


def test_large_object_fetched_by_presigned_url(fake_primary):
    a, fake = fake_primary(fake_kw={"fetch_large": True})
    ca = a.client()
    rng = random.Random(5)
    small = payload("small", 63999, rng)
    large = payload("large", 300_000, rng)
    key = "dir/with space+plus"
    assert ca.put("fetch", "small", small).status == 200
    assert ca.put("fetch", key, large).status == 200
    wait_fake_converged(a, fake)
    (es,) = fake.events_for("fetch", "small")
    assert es["inline"] and es["url"] is None, es
    (el,) = [e for e in fake.events_for("fetch", key) if e["result"] == 0]
    assert not el["inline"] and el["url"], el
    assert el["url"].startswith(a.url("/admin/replication/fetch/")), el["url"]
    assert any(ok for url, st, ok in fake.fetch_results if url == el["url"]), fake.fetch_results

    url = urllib.parse.urlsplit(el["url"])
    q = dict(urllib.parse.parse_qsl(url.query))

    def fetch(query):
        u = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path, urllib.parse.urlencode(query), ""))
        try:
            with urllib.request.urlopen(u, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    st, body = fetch(q)
    assert st == 200 and body == large
    # a tampered signature, and a genuine but expired one, give nothing
    bad = dict(q, sig=("0" if q["sig"][0] != "0" else "1") + q["sig"][1:])
    st, body = fetch(bad)
    assert 400 <= st < 500 and body != large, (st, body[:200])
    token = a.repl["remote_token"].encode()
    expired = int(time.time()) - 60
    msg = "GET\n%s\n%s\n%s\n%d" % ("fetch", key, q["version"], expired)
    sig = hmac.new(token, msg.encode(), hashlib.sha256).hexdigest()
    st, body = fetch(dict(q, expires=str(expired), sig=sig))
    assert 400 <= st < 500 and body != large, (st, body[:200])
    # once overwritten, that version is gone: 410 tells the replica a newer event follows
    assert ca.put("fetch", key, payload("newer", 200_000, rng)).status == 200
    st, body = fetch(q)
    assert st == 410, (st, body[:200])
    wait_fake_converged(a, fake)


# --- tokens between real sites --------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["wrong", "missing"])
def test_replica_refuses_bad_token_until_fixed(sites, variant):
    a, b = sites(b_accept=new_token() if variant == "wrong" else None)
    w = Workload()
    ca = a.client()
    for i in range(10):
        assert w.put(ca, "tok", "k%d" % i, b"value %d" % i).status == 200
    assert w.delete(ca, "tok", "k3").status == 204
    wait_until(lambda: any(HINT_401 in e.get("msg", "") for e in a.repld.log_json()), 15,
               what=lambda: "the token hint in repld's log\n" + a.describe())
    assert snapshot(b) == {}, "B applied a batch with a bad token"
    st = a.status()
    assert st["events_failed"] == 0 and st["log_pending"] >= 11, st
    assert a.list_failed() == []

    b.accept_token = a.repl["remote_token"]
    b.write_config()
    b.kill9_storaged()  # a stop, config fix and start; SIGTERM would wait for repld's idle connection
    b.start_storaged()
    converge_or_fail(a, b)
    check_recorded(w, b, "B")
    assert a.status()["events_failed"] == 0


# --- HTTPS and access tokens ----------------------------------------------------------------------------------------


def test_replication_over_https_with_a_private_ca(sites, tmp_path):
    tls = make_test_ca(tmp_path / "ca")
    other = make_test_ca(tmp_path / "other-ca")
    a, b = sites(tls=tls, a_repl={"ca_file": other["ca"]}, start=False)  # A's repld trusts the wrong CA
    b.start()
    a.start()
    assert a.url().startswith("https://") and a.repl["remote_url"].startswith("https://")
    w = Workload()
    ca = a.client()
    rng = random.Random(31)
    assert w.put(ca, "tls", "small", payload("s", 1000, rng)).status == 200
    st = wait_until(lambda: (lambda s: s if s["remote"]["last_error"] else None)(a.repld_status()), 15,
                    what=lambda: "a TLS error in repld's status\n" + a.describe())
    print("with the wrong CA:", st["remote"])
    assert st["remote"]["state"] != "up" and st["events_failed"] == 0, st
    assert snapshot(b) == {}

    # the right CA, but a name the certificate does not carry (it names IP 127.0.0.1 only)
    a.stop_repld()
    del a.repl["ca_file"]  # back to the site's own CA
    good_url = a.repl["remote_url"]
    a.repl["remote_url"] = good_url.replace("127.0.0.1", "localhost")
    a.write_config()
    a.start_repld()
    st = wait_until(lambda: (lambda s: s if s["remote"]["last_error"] else None)(a.repld_status()), 15,
                    what=lambda: "a host name error in repld's status\n" + a.describe())
    print("with the wrong host name:", st["remote"])
    assert st["remote"]["state"] != "up" and st["events_failed"] == 0, st
    assert snapshot(b) == {}

    a.stop_repld()
    a.repl["remote_url"] = good_url
    a.write_config()
    a.start_repld()
    assert w.put(ca, "tls", "large", payload("l", 500_000, rng)).status == 200  # B fetches it over HTTPS
    assert w.put(ca, "tls", "gone", b"soon deleted").status == 200
    assert w.delete(ca, "tls", "gone").status == 204
    converge_or_fail(a, b, sample=None)
    check_recorded(w, b, "B")


def test_access_tokens_do_not_block_replication(sites):
    """With server.access_token set on both sites, replication uses its own credentials:
    the accept token for batches, presigned URLs for fetches."""
    a, b = sites(a_kw={"access_token": new_token(), "log_level": "debug"},
                 b_kw={"access_token": new_token(), "log_level": "debug"})
    ca = a.client()
    w = Workload()
    rng = random.Random(41)
    assert a.client(token="wrong").put("locked", "k", b"x").status == 401
    for i in range(10):
        assert w.put(ca, "locked", "k%d" % i, payload(i, rng.choice((100, 200_000)), rng)).status == 200
    assert w.delete(ca, "locked", "k0").status == 204
    converge_or_fail(a, b, sample=None)
    check_recorded(w, b, "B")
    assert w.purge(ca, "locked").status == 200
    converge_or_fail(a, b)
    assert b.client(token="wrong").put("locked", "k1", b"x").status == 401
    # no token in any log (at debug level), status or metrics answer
    secrets_ = [a.access_token, b.access_token, a.repl["remote_token"]]
    texts = {"A storaged log": a.storaged.log(), "B storaged log": b.storaged.log(), "A repld log": a.repld.log(),
             "A status": json.dumps(a.status()), "A metrics": a.client().raw("GET", "/metrics").body.decode(errors="replace"),
             "B metrics": b.client().raw("GET", "/metrics").body.decode(errors="replace")}
    for what, text in texts.items():
        for t in secrets_:
            assert t not in text, "a token appears in the %s" % what


# --- status ---------------------------------------------------------------------------------------------------------


def test_repld_status_running_and_stopped(sites):
    a, b = sites()
    ca = a.client()
    for i in range(25):
        assert ca.put("stat", "k%02d" % i, b"x" * i).status == 200
    converge_or_fail(a, b)
    st = wait_until(lambda: (lambda s: s if s["events_pending"] == 0 else None)(a.repld_status()), 20,
                    what="repld idle")
    print("repld --status:", json.dumps(st))
    for field in ("enabled", "events_queued", "events_replicated", "events_failed", "last_replication",
                  "events_pending", "lag_seconds", "remote", "workers"):
        assert field in st, (field, st)
    assert st["enabled"] is True
    assert st["events_queued"] >= 25 and st["events_replicated"] >= 25 and st["events_failed"] == 0, st
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", st["last_replication"]), st
    assert st["lag_seconds"] == 0, st
    assert st["remote"]["url"].rstrip("/") == b.url(), st
    assert st["remote"]["state"] == "up", st
    assert isinstance(st["workers"], list) and len(st["workers"]) == REPL_DEFAULTS["workers"], st
    hs = a.status()
    assert (hs["events_queued"], hs["events_replicated"], hs["events_failed"]) == \
        (st["events_queued"], st["events_replicated"], st["events_failed"]), (hs, st)
    assert hs["log_pending"] == 0, hs

    a.stop_repld()
    r = a.repld_cmd("--status")
    assert r.returncode == 1, r
    assert "not running" in r.stderr and str(a.socket_path) in r.stderr, r.stderr
    assert r.stdout == "", r.stdout


def test_storaged_status_and_metrics_with_and_without_repld(sites):
    """storaged answers with repld's live figures while it runs, and the same
    counters from LMDB (saying repld is down) when it does not."""
    a, b = sites()
    ca = a.client()
    for i in range(10):
        assert ca.put("smet", "k%d" % i, b"y" * 100).status == 200
    converge_or_fail(a, b)
    st = wait_until(lambda: (lambda s: s if s["events_pending"] == 0 else None)(a.status()), 20, what="A idle")
    assert st["repld"] == "running" and st["remote"]["state"] == "up", st
    m = ca.metrics()
    assert m.value("comio_replication_pending_events") == 0
    assert m.value("comio_replication_pending_bytes") == 0 and st["bytes_pending"] == 0, st
    assert m.value("comio_replication_events_replicated_total") >= 10
    assert m.value("comio_replication_remote_up") == 1
    assert m.types.get("comio_replication_batch_duration_seconds") == "histogram", m.text
    assert m.value("comio_replication_batch_duration_seconds_count") >= 1
    replicated = st["events_replicated"]

    a.stop_repld()
    assert ca.put("smet", "after", b"z").status == 200
    st = a.status()
    assert st["repld"] == "down" and st["remote"] is None, st
    assert st["events_replicated"] == replicated and st["events_pending"] == 1 and st["bytes_pending"] == 1, st
    m = ca.metrics()
    assert m.value("comio_replication_pending_events") == 1
    assert m.value("comio_replication_pending_bytes") == 1
    assert m.value("comio_replication_remote_up") == 0
    assert m.value("comio_replication_events_replicated_total") == replicated
    a.start_repld()
    converge_or_fail(a, b)
    wait_until(lambda: a.status()["bytes_pending"] == 0, 20, what="pending bytes back to 0")


# --- comio server: the seed's quick start ---------------------------------------------------------------------------


def _children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def _exe_name(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0]).decode()
    except OSError:
        return None


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_comio_server_runs_both_daemons(tmp_path):
    token = new_token()
    b = Site(tmp_path / "b", "site-b", accept_token=token)
    a = Site(tmp_path / "a", "site-a", repl={"remote_url": b.url(), "remote_token": token})
    procs, kids, logs = {}, {}, {}
    try:
        for s in (b, a):
            logs[s.site_id] = s.workdir / "comio.log"
            with open(logs[s.site_id], "ab") as log:
                procs[s.site_id] = subprocess.Popen([str(comio_path()), "server", "--config", str(s.config_path)],
                                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                    cwd=str(s.workdir), env=comio.sanitizer_env())
        for s in (b, a):
            c = s.client()
            wait_until(lambda: _try_health(c), comio.START_TIMEOUT, what="%s healthy" % s.site_id)
        kids["site-a"] = wait_until(lambda: (lambda k: k if len(k) == 2 else None)(_children(procs["site-a"].pid)),
                                    comio.START_TIMEOUT, what="storaged and repld under comio (A)")
        kids["site-b"] = _children(procs["site-b"].pid)
        assert len(kids["site-b"]) == 1, kids  # no repld where replication is disabled

        data = os.urandom(50_000)
        assert a.client().put("quick", "start", data).status == 200
        cb = b.client()
        got = wait_until(lambda: get_ok(cb, "quick", "start"), 30, what="the object on B")
        assert got.body == data
        st = wait_until(lambda: _try_repld_status(a), 10, what="repld --status under comio")
        assert st["events_failed"] == 0, st

        # a daemon that dies is restarted, and replication goes on
        (old_repld,) = [p for p in kids["site-a"] if _exe_name(p) == "repld"]
        os.kill(old_repld, signal.SIGKILL)
        new = wait_until(lambda: [p for p in _children(procs["site-a"].pid)
                                  if p != old_repld and _exe_name(p) == "repld"],
                         15, what="repld restarted by comio")
        kids["site-a"] += new
        data2 = os.urandom(70_000)
        assert a.client().put("quick", "after-restart", data2).status == 200
        got = wait_until(lambda: get_ok(cb, "quick", "after-restart"), 30, what="the second object on B")
        assert got.body == data2

        for s in (a, b):  # A first: repld closes its connection to B
            for c in s.storaged.clients:
                c.close()
            procs[s.site_id].send_signal(signal.SIGTERM)
            rc = procs[s.site_id].wait(timeout=40)
            assert rc == 0, "comio server of %s exited %s:\n%s" % (s.site_id, rc, logs[s.site_id].read_text())
        for site_id, pids in kids.items():
            assert not [p for p in pids if _alive(p)], "daemons of %s survived comio's exit" % site_id
        for site_id, path in logs.items():
            text = path.read_text(errors="replace")
            assert comio.sanitizer_report(text) is None, text[-4000:]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for pids in kids.values():
            for pid in pids:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _try_health(c):
    try:
        return c.health().status == 200
    except OSError:
        return False


def _try_repld_status(site):
    r = site.repld_cmd("--status")
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_second_repld_refuses_to_start(sites):
    """Two shippers on one log would each ship, persist the cursor and trim,
    and the second would take the first one's control socket: it must exit
    before any of that, leaving the first in charge."""
    a, b = sites()
    ca = a.client()
    assert ca.put("two", "before", b"shipped by the first").status == 200
    converge_or_fail(a, b)
    p = subprocess.run(a.repld.argv(), cwd=str(a.workdir), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       errors="replace", timeout=20, env=comio.sanitizer_env())
    out = p.stdout + p.stderr + a.repld.log()
    assert not comio.sanitizer_report(out), out
    assert p.returncode == 1, "exit %d; output %r" % (p.returncode, p.stdout + p.stderr)
    assert "in use by another repld" in out, out
    # the first still answers on its socket, and still ships
    st = json.loads(subprocess.run([str(repld_path()), "--config", str(a.config_path), "--status"],
                                   capture_output=True, text=True, timeout=20).stdout)
    assert st["enabled"] is True and "workers" in st, st
    assert a.repld.alive()
    assert ca.put("two", "after", b"shipped by the first too").status == 200
    converge_or_fail(a, b)
    assert b.client().get("two", "after").body == b"shipped by the first too"


def test_lone_writes_wake_repld_without_its_safety_poll(sites, monkeypatch):
    """Each commit that logs wakes repld through the wake file. With its once-a-second safety poll
    pushed out to an hour, lone PUTs, DELETEs and a PURGE still reach B: no wake-up is lost, even
    when repld reads the log while storaged's commit is still being published (LMDB writes its
    meta page, which used to be the wake-up, before readers can see the transaction)."""
    monkeypatch.setenv("COMIO_REPLD_IDLE_POLL_MS", "3600000")
    a, b = sites()
    ca, cb = a.client(), b.client()
    for i in range(12):
        data = os.urandom(1000 + i)
        assert ca.put("lone", "k%d" % i, data).status == 200
        got = wait_until(lambda: get_ok(cb, "lone", "k%d" % i), 30, what="lone PUT %d on B" % i)
        assert got.body == data
        time.sleep(0.05)  # let repld go back to sleep: the next write must wake it
    assert ca.delete("lone", "k0").status == 204
    wait_until(lambda: cb.head("lone", "k0").status == 404, 30, what="lone DELETE on B")
    time.sleep(0.05)
    assert ca.purge("lone").status == 200
    wait_until(lambda: cb.head("lone", "k1").status == 404, 30, what="PURGE on B")
    converge_or_fail(a, b)
