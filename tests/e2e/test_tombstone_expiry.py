"""test_tombstone_expiry.py - a target away for longer than replication.tombstone_ttl:
the deletes it missed reach it although the source's tombstones have expired, and
nothing deleted comes back (docs/replication-apply.md, "Tombstone horizon").

Two ways a target can miss deletes whose tombstones are gone:
  - it was taken out of the source's targets while away (its cursor and the log it
    held back are gone): when it is listed again it gets a full sync, in which the
    keys the source wrote, no longer holds, and whose versions are below the source's
    tombstone horizon are deleted;
  - it was only down: the log kept every event it had not acknowledged, tombstones
    or not, and the replay carries the DELETEs (two-way pair here).
And the other way: a peer that still holds keys this site deleted, and ships them
here (a resync), cannot bring them back: they are below this site's horizon.
The oracle is the client's own records (Workload) and `comio diff`. TTL 2 s: the
collection runs once per TTL when that is shorter than a minute."""

import json
import subprocess

import pytest

from harness import comio
from harness.replication import (Site, Workload, comio_diff, comio_path, converge_or_fail, finish_sites, new_token,
                                 wait_until)

TTL = "2s"


@pytest.fixture
def made():
    sites = []
    yield sites
    problems = finish_sites(sites)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def collected(site):
    """True once the site remembers no tombstone (all expired and collected)."""
    return site.client().metrics().value("comio_replica_tombstones") == 0


def target(site, name):
    return next(t for t in site.repld_status()["targets"] if t["name"] == name)


def test_a_target_dropped_while_away_gets_the_deletes_it_missed(tmp_path, made):
    ports = {n: comio.free_port() for n in "abc"}
    tokens = {n: new_token() for n in "abc"}

    def targets(names):
        return [{"name": n, "url": "http://127.0.0.1:%d" % ports[n], "token": tokens[n]} for n in names]

    a = Site(tmp_path / "a", "site-a", port=ports["a"], repl={"targets": targets("bc"), "tombstone_ttl": TTL})
    b = Site(tmp_path / "b", "site-b", port=ports["b"], accept_token=tokens["b"])
    c = Site(tmp_path / "c", "site-c", port=ports["c"], accept_token=tokens["c"])
    made.extend([a, b, c])
    b.start()
    c.start()
    a.start()
    ac = a.client()
    w = Workload()
    for i in range(40):
        assert w.put(ac, "docs", "k%02d" % i, b"doc %d" % i * 30).status == 200
    converge_or_fail(a, b, timeout=60)
    converge_or_fail(a, c, timeout=60)

    # B goes away for long: the operator takes it out of A's targets (its cursor no longer holds the log back)
    b.stop()
    a.repl["targets"] = targets("c")
    a.write_config()
    a.stop_repld()
    a.start_repld()
    for i in range(15):
        assert w.delete(ac, "docs", "k%02d" % i).status == 204
    converge_or_fail(a, c, timeout=60)
    wait_until(lambda: collected(a), 30, interval=0.2, what="A's tombstones collected")

    # B comes back and is listed again: a new target, a full sync decided by A's state
    b.start()
    a.repl["targets"] = targets("bc")
    a.write_config()
    a.stop_repld()
    a.start_repld()
    wait_until(lambda: target(a, "b")["sync"]["phase"] == "done", 60, interval=0.1, what="B's full sync")
    s = target(a, "b")["sync"]
    assert s["objects_deleted"] == 15 and s["tombstone_horizon"] > 0 and s["objects_failed"] == 0, s
    converge_or_fail(a, b, timeout=60)
    for site, name in ((a, "A"), (b, "B"), (c, "C")):
        d = w.check(site, name)
        assert not d, "\n".join(d)
    assert comio_diff(a, b)[0] == []


@pytest.mark.long
def test_a_two_way_peer_down_longer_than_the_ttl_resurrects_nothing(tmp_path, made):
    ports = {n: comio.free_port() for n in "ab"}
    tokens = {n: new_token() for n in "ab"}

    def repl(to):
        return {"remote_url": "http://127.0.0.1:%d" % ports[to], "remote_token": tokens[to], "tombstone_ttl": TTL}

    a = Site(tmp_path / "a", "site-a", port=ports["a"], repl=repl("b"), accept_token=tokens["a"])
    b = Site(tmp_path / "b", "site-b", port=ports["b"], repl=repl("a"), accept_token=tokens["b"])
    made.extend([a, b])
    b.start()
    a.start()
    ac, bc = a.client(), b.client()
    w = Workload()
    for i in range(30):
        assert w.put(ac, "docs", "a%02d" % i, b"from A %d" % i).status == 200
        assert w.put(bc, "docs", "b%02d" % i, b"from B %d" % i).status == 200
    converge_or_fail(a, b, timeout=60)

    # B is down for longer than the TTL while A deletes keys of both origins; A's tombstones are collected
    b.stop()
    for i in range(10):
        assert w.delete(ac, "docs", "a%02d" % i).status == 204
        assert w.delete(ac, "docs", "b%02d" % i).status == 204
    wait_until(lambda: collected(a), 30, interval=0.2, what="A's tombstones collected")

    # B is back: A's log still holds the DELETEs B never acknowledged; B ships what it holds to A, which
    # must not bring a deleted key back
    b.start()
    converge_or_fail(a, b, timeout=60)
    wait_until(lambda: a.repld_status()["targets"][0]["events_pending"] == 0
               and b.repld_status()["targets"][0]["events_pending"] == 0, 30, interval=0.1, what="both logs drained")
    for site, name in ((a, "A"), (b, "B")):
        d = w.check(site, name)
        assert not d, "\n".join(d)
    assert comio_diff(a, b)[0] == [] and comio_diff(b, a)[0] == []


def test_a_peer_that_missed_the_deletes_cannot_bring_them_back(tmp_path, made):
    """Two-way: B still holds keys A wrote and deleted (A's DELETEs have not reached it),
    A's tombstones have expired, and B resyncs to A: A refuses the PUTs of its own
    deleted keys (they are below its tombstone horizon) instead of taking them back."""
    ports = {n: comio.free_port() for n in "ab"}
    tokens = {n: new_token() for n in "ab"}

    def repl(to):
        return {"remote_url": "http://127.0.0.1:%d" % ports[to], "remote_token": tokens[to], "tombstone_ttl": TTL}

    a = Site(tmp_path / "a", "site-a", port=ports["a"], repl=repl("b"), accept_token=tokens["a"])
    b = Site(tmp_path / "b", "site-b", port=ports["b"], repl=repl("a"), accept_token=tokens["b"])
    made.extend([a, b])
    b.start()
    a.start()
    ac = a.client()
    w = Workload()
    for i in range(20):
        assert w.put(ac, "docs", "a%02d" % i, b"from A %d" % i * 10).status == 200
    converge_or_fail(a, b, timeout=60)
    a.stop_repld()  # A's deletes stay in its log for now
    for i in range(10):
        assert w.delete(ac, "docs", "a%02d" % i).status == 204
    wait_until(lambda: collected(a), 30, interval=0.2, what="A's tombstones collected")

    # B resyncs to A: it ships the 10 keys A deleted, as PUTs of A's own versions
    argv = [str(comio_path()), "resync", "--config", str(b.config_path), "--target", "127.0.0.1", "--wait", "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=comio.sanitizer_env())
    assert p.returncode == 0, p
    s = json.loads(p.stdout)["sync"]
    assert s["objects_shipped"] == 10 and s["objects_failed"] == 0, s  # acknowledged: skipped as stale by A
    d = w.check(a, "A")
    assert not d, "\n".join(d)  # none came back on A

    a.start_repld()  # the DELETEs reach B
    converge_or_fail(a, b, timeout=60)
    for site, name in ((a, "A"), (b, "B")):
        d = w.check(site, name)
        assert not d, "\n".join(d)
    assert comio_diff(a, b)[0] == []
