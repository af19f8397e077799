"""test_full_sync.py - full sync: a target that lacks what the source's log no longer
holds (replication enabled late, a wiped replica, a restored backup) is brought up to
the source's whole state by repld's scan (repld/sync.h).

The oracle is `comio diff` and the clients' own records (Workload); the sync's
counters are checked only where the test is about them (what a resync ships).
Every wait is bounded."""

import json
import shutil
import time

import pytest

from harness import comio
from harness.replication import (Workload, Writer, converge_or_fail, finish_sites, make_pair, snapshot,
                                 wait_until)


@pytest.fixture
def pair(tmp_path):
    """make_pair(**kw) -> (a, b), not started; every site made is torn down."""
    made = []

    def make(**kw):
        a, b = make_pair(tmp_path / ("pair%d" % len(made)), start=False, **kw)
        made.extend([a, b])
        return a, b

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def target_sync(site):
    """The `sync` object of the site's first target in repld --status."""
    return site.repld_status()["targets"][0]["sync"]


def wait_sync_done(site, timeout=60, since_ms=0):
    """Waits until the first target's full sync is done (and finished after since_ms); returns it."""
    holder = {}

    def done():
        s = target_sync(site)
        holder["s"] = s
        return s["phase"] == "done" and s["finished"] is not None
    wait_until(done, timeout, interval=0.1, what="full sync done (last: %r)" % (holder,))
    return holder["s"]


def log_events(site, msg):
    return [e for e in site.repld.log_json() if e.get("msg") == msg]


def fill(client, w, buckets=("alpha", "beta", "gamma"), n=100, size=300):
    """n objects in each bucket through Workload w, some deleted, one bucket purged and
    written again: tombstones and a purge version for the sync to carry."""
    for b in buckets:
        for i in range(n):
            r = w.put(client, b, "k%04d" % i, (b + str(i)).encode() * (size // 8 + i % 7))
            assert r is not None and r.status == 200, r
    for i in range(0, n, 10):
        assert w.delete(client, buckets[0], "k%04d" % i).status == 204
    r = w.purge(client, buckets[2])
    assert r is not None and r.status == 200, r
    for i in range(n // 4):
        assert w.put(client, buckets[2], "after-purge-%03d" % i, b"p" * (50 + i)).status == 200


def test_enabling_replication_on_a_store_with_objects_ships_them_all(pair):
    a, b = pair()
    # A runs without replication first: nothing it stores is logged
    repl = a.repl
    a.repl = None
    a.write_config()
    b.start()
    a.start()
    ac = a.client()
    w = Workload()
    fill(ac, w)
    a.stop()
    # now B is A's target: the log holds nothing of what A stores
    a.repl = repl
    a.write_config()
    a.start()
    s = wait_sync_done(a)
    converge_or_fail(a, b, timeout=60)
    d = w.check(b, "B")
    assert not d, "\n".join(d)
    present, absent, _ = w.expected()
    assert len(absent) >= 10 + 100, w.summary()  # the deletes and the purge: none of them is on B
    assert s["reason"] == "new target", s
    assert s["objects_shipped"] >= len(present), s
    assert s["objects_failed"] == 0 and s["objects_extra"] == 0, s
    assert log_events(a, "full sync started") and log_events(a, "full sync finished")
    # a second start of repld does not sync again: the target's store is the one synced
    a.stop_repld()
    a.start_repld()
    time.sleep(0.5)
    assert len(log_events(a, "full sync started")) == 1
    # the status through storaged carries the same object, and the site's store identity
    st = a.status()
    assert st["targets"][0]["sync"]["phase"] == "done", st
    assert len(st["store_id"]) == 32 and st["store_id"] != b.status()["store_id"], st


def test_a_wiped_replica_is_rebuilt_while_clients_write(pair):
    a, b = pair()
    b.start()
    a.start()
    ac = a.client()
    w = Workload()
    fill(ac, w, n=80)
    converge_or_fail(a, b, timeout=60)
    first = wait_sync_done(a)
    store_before = b.status()["store_id"]

    def write(c, i):
        if i % 5 == 4:
            w.delete(c, "alpha", "k%04d" % (i % 80))
        else:
            w.put(c, "delta", "live%05d" % i, b"w" * (100 + i % 50))
    wr = Writer(a, write, count=600)
    wr.start()
    try:
        # B loses its disk: store and metadata gone, a fresh one in their place
        b.stop_storaged()
        for p in b.workdir.iterdir():
            if p.name.startswith("store.img"):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
        b.start_storaged()
        assert b.status()["store_id"] != store_before
        # nobody tells repld: it sees the new store and rebuilds B
        wait_until(lambda: len(log_events(a, "full sync started")) >= 2, 60, interval=0.1, what="a second full sync")
    finally:
        wr.stop()
        wr.join_checked(timeout=60)
    events = log_events(a, "full sync started")
    assert events[-1].get("reason") == "store replaced", events
    wait_until(lambda: target_sync(a)["phase"] == "done", 60, interval=0.1, what="the rebuild to finish")
    converge_or_fail(a, b, timeout=60)
    d = w.check(b, "B")
    assert not d, "\n".join(d)
    assert first["store"] != target_sync(a)["store"]
