"""test_full_sync.py - full sync: a target that lacks what the source's log no longer
holds (replication enabled late, a wiped replica, a restored backup) is brought up to
the source's whole state by repld's scan (repld/sync.h).

The oracle is `comio diff` and the clients' own records (Workload); the sync's
counters are checked only where the test is about them (what a resync ships).
Every wait is bounded."""

import shutil
import subprocess
import time

import pytest

from harness import comio
from harness.fake_replica import FakeReplica
from harness.replication import (Site, TcpProxy, Workload, Writer, comio_path, converge_or_fail, finish_sites,
                                 make_pair, new_token, snapshot, wait_until)


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


def test_writes_made_while_replication_was_off_reach_a_target_that_kept_its_cursor(pair):
    """A target that has been synced keeps its cursor and sync record while replication is off for a
    while; the writes and deletes made then are in no log. Turning replication on again gives it a full
    sync (reason "writes while replication was off"), and only once: before, those writes never shipped."""
    a, b = pair()
    b.start()
    a.start()
    ac = a.client()
    w = Workload()
    for i in range(40):
        assert w.put(ac, "kept", "k%03d" % i, b"first %d" % i).status == 200
    wait_sync_done(a)
    converge_or_fail(a, b, timeout=30)
    # replication off: what A takes now is not logged
    a.stop()
    repl = a.repl
    a.repl = None
    a.write_config()
    a.start()
    ac = a.client()
    for i in range(0, 40, 2):
        assert w.put(ac, "kept", "k%03d" % i, b"while off %d" % i).status == 200
    for i in range(1, 40, 4):
        assert w.delete(ac, "kept", "k%03d" % i).status == 204
    for i in range(10):
        assert w.put(ac, "new-while-off", "n%02d" % i, b"n").status == 200
    a.stop()
    a.repl = repl
    a.write_config()
    a.start()
    converge_or_fail(a, b, timeout=60)
    d = w.check(b, "B")
    assert not d, "\n".join(d)
    started = log_events(a, "full sync started")
    assert [e.get("reason") for e in started][-1:] == ["writes while replication was off"], started
    # once synced, a restart of repld does not sync again
    n = len(started)
    a.stop_repld()
    a.start_repld()
    time.sleep(0.5)
    assert len(log_events(a, "full sync started")) == n


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
    m = a.client().metrics()
    assert m.value("comio_replication_sync_shipped_objects", target="127.0.0.1") == s["objects_shipped"]
    assert m.value("comio_replication_sync_running", target="127.0.0.1") == 0
    # and comio status says it in one line for the target
    p = subprocess.run([str(comio_path()), "status", "--url", a.url()], capture_output=True, text=True, timeout=30,
                       env=comio.sanitizer_env())
    lines = [x for x in p.stdout.splitlines() if x.strip().startswith("full sync:")]
    assert len(lines) == 1 and "done (new target)" in lines[0] and "0 failed" in lines[0], p.stdout + p.stderr


def test_the_listing_refuses_bad_parameters_and_wrong_tokens(pair):
    a, b = pair()
    b.start()
    bc = b.client()
    assert bc.put("lst", "k1", b"one").status == 200
    assert bc.put("lst", "k2", b"two").status == 200
    assert bc.delete("lst", "k1").status == 204
    auth = {"Authorization": "Bearer " + b.accept_token}
    for query, code in [("max=0", "InvalidArgument"), ("bucket=lst&max=10001", "InvalidArgument"),
                        ("bucket=lst&max=x", "InvalidArgument"), ("bucket=Not_A_Bucket", "InvalidBucketName"),
                        ("after=k1", "InvalidArgument")]:
        r = bc.raw("GET", "/admin/replication/list?" + query, headers=auth)
        comio.expect_error(r, 400, code)
    r = bc.raw("GET", "/admin/replication/list", headers={"Authorization": "Bearer wrong"})
    comio.expect_error(r, 401, "Unauthorized")
    r = bc.raw("POST", "/admin/replication/list", headers=auth)
    comio.expect_error(r, 405, "MethodNotAllowed")
    # a good one answers msgpack, tombstones included (checked in detail by the unit tests and the syncs above)
    r = bc.raw("GET", "/admin/replication/list?bucket=lst&after=&max=1", headers=auth)
    assert r.status == 200 and r.header("Content-Type") == "application/msgpack", r
    assert b"k1" in r.body and b"k2" not in r.body and b"more" in r.body, r


def test_a_wiped_replica_is_rebuilt_while_clients_write(pair):
    a, b = pair()
    b.start()
    a.start()
    ac = a.client()
    w = Workload()
    fill(ac, w, n=80)
    converge_or_fail(a, b, timeout=60)
    first = wait_sync_done(a)
    # A's log held every write when B became its target: B was not scanned, its store recorded as synced
    assert first["objects_scanned"] == 0 and not log_events(a, "full sync started"), first
    assert log_events(a, "no full sync needed: the log holds every write of this site")
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
        wait_until(lambda: len(log_events(a, "full sync started")) >= 1, 60, interval=0.1, what="a full sync")
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


def copy_store(site, dest):
    """Copies a stopped site's store and metadata (a backup) into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in site.workdir.iterdir():
        if p.name.startswith("store.img"):
            if p.is_dir():
                shutil.copytree(p, dest / p.name)
            else:
                shutil.copy2(p, dest / p.name)


def restore_store(site, src):
    for p in site.workdir.iterdir():
        if p.name.startswith("store.img"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in src.iterdir():
        shutil.copytree(p, site.workdir / p.name) if p.is_dir() else shutil.copy2(p, site.workdir / p.name)


def test_a_resync_of_nearly_identical_sites_ships_only_the_differences(pair, tmp_path):
    a, b = pair()
    b.start()
    a.start()
    ac = a.client()
    n = 1000
    for i in range(n):
        assert ac.put("near", "k%04d" % i, b"v%d" % i * 10).status == 200
    converge_or_fail(a, b, timeout=60)
    # B is restored from a backup taken before 10 changes: the same store, behind A's back
    b.stop_storaged()
    copy_store(b, tmp_path / "backup")
    b.start_storaged()
    for i in range(4):
        assert ac.put("near", "k%04d" % i, b"changed %d" % i).status == 200
    for i in range(10, 13):
        assert ac.delete("near", "k%04d" % i).status == 204
    for i in range(3):
        assert ac.put("near", "new%d" % i, b"new").status == 200
    converge_or_fail(a, b, timeout=60)
    b.stop_storaged()
    restore_store(b, tmp_path / "backup")
    b.start_storaged()
    snap = snapshot(b)["near"]
    assert len(snap) == n and "new0" not in snap  # the restored B lacks the changes, and nothing tells repld
    assert target_sync(a)["reason"] == "new target"
    bc = b.client()
    assert bc.put("near", "only-on-b", b"written on B alone").status == 200  # B does not ship

    r = a.repld_cmd("--resync", "--target", "127.0.0.1")
    assert r.returncode == 0 and r.stdout.startswith("ok:"), r
    holder = {}

    def done():
        s = target_sync(a)
        holder["s"] = s
        return s["reason"] == "requested" and s["phase"] == "done"
    wait_until(done, 60, interval=0.1, what="the requested resync (last: %r)" % (holder,))
    s = holder["s"]
    assert s["objects_shipped"] == 10, s  # 4 overwrites, 3 deletes, 3 new objects
    assert s["objects_scanned"] == n + 3, s  # every object (3 deleted, 3 new) and the 3 tombstones
    assert s["objects_skipped"] == n + 3 - 10, s
    assert s["objects_failed"] == 0 and s["objects_extra"] == 1, s  # reported ...
    assert log_events(a, "full sync finished")[-1]["shipped"] == "10"
    assert bc.get("near", "only-on-b").status == 200  # ... and never deleted
    assert bc.delete("near", "only-on-b").status == 204
    converge_or_fail(a, b, timeout=60)


def test_a_killed_repld_resumes_its_full_sync_where_it_was(pair):
    # inline_threshold of one byte: every object is fetched by B from A, so a sync lasts a while; A reaches B
    # through a proxy that can stop the traffic, so each step below happens while the sync is surely running
    a, b = pair(a_repl={"batch_size": 50, "inline_threshold": "1"})
    proxy = TcpProxy(b.port)
    try:
        a.repl["remote_url"] = proxy.url
        n = 3000
        repl = a.repl
        a.repl = None
        a.write_config()
        b.start()
        a.start()
        ac = a.client()
        for i in range(n):
            assert ac.put("many", "k%05d" % i, b"x" * (20 + i % 40)).status == 200
        a.stop()
        a.repl = repl
        a.write_config()
        a.start()
        wait_until(lambda: a.status()["targets"][0]["sync"]["objects_shipped"] >= 200, 60, interval=0.02,
                   what="the first sync to ship 200 objects")
        # --cancel stops it, even in the middle of a request the target does not answer
        proxy.partition()
        r = a.repld_cmd("--cancel", "--target", "127.0.0.1")
        assert r.returncode == 0 and "cancelling" in r.stdout, r
        wait_until(lambda: target_sync(a)["phase"] == "cancelled", 30, interval=0.05, what="the sync cancelled")
        # a second --resync while one runs says which, and how to stop it
        r = a.repld_cmd("--resync", "--target", "127.0.0.1")
        assert r.returncode == 0 and r.stdout.startswith("ok:"), r
        r = a.repld_cmd("--resync", "--target", "127.0.0.1")
        assert r.returncode == 1 and "127.0.0.1" in r.stderr and "repld --cancel" in r.stderr, r
        r = a.repld_cmd("--cancel", "--target", "nosuch")
        assert r.returncode == 1 and "no target named nosuch" in r.stderr, r
        r = a.repld_cmd("--resync", "--target", "127.0.0.1", "--bucket", "Not_A_Bucket")
        assert r.returncode == 2 and "--bucket" in r.stderr, r
        proxy.heal(reset=True)

        def far_enough():
            s = a.status()["targets"][0]["sync"]
            return s["reason"] == "requested" and s["phase"] == "running" and s["objects_scanned"] >= 1200
        wait_until(far_enough, 60, interval=0.02, what="the resync half way")
        proxy.partition()
        a.kill9_repld()
        cut = a.status()["targets"][0]["sync"]  # what LMDB holds: storaged answers without repld
        assert cut["phase"] == "running" and 0 < cut["objects_scanned"] < n, cut
        assert cut["objects_estimated"] == n and cut["eta_seconds"] is not None and cut["eta_seconds"] >= 0, cut
        proxy.heal(reset=True)
        a.start_repld()
        holder = {}

        def done():
            s = target_sync(a)
            holder["s"] = s
            return s["phase"] == "done"
        wait_until(done, 90, interval=0.1, what="the resumed sync (last: %r)" % (holder,))
        s = holder["s"]
        assert s["reason"] == "requested" and s["started"] == cut["started"], (cut, s)
        # resumed from the persisted position: every key scanned once, and what shipped after the cut is at
        # most what was left plus the one batch that was in flight
        assert s["objects_scanned"] == n, (cut, s)
        assert s["objects_shipped"] - cut["objects_shipped"] <= n - cut["objects_scanned"] + 50, (cut, s)
        assert s["objects_failed"] == 0, s
        assert log_events(a, "full sync resumed"), "no resume logged"
        converge_or_fail(a, b, timeout=60)
    finally:
        a.stop_repld()
        proxy.close()


@pytest.mark.long
def test_a_wiped_site_of_a_two_way_pair_gets_back_what_both_wrote(tmp_path):
    """A <-> B. B loses its disk after both wrote: A rebuilds it, B's writes that A holds included (a sync ships
    back to a key's origin), and B's own sync to A finds every key of A extra while it is empty: counted, not
    deleted, nothing lost on A."""
    ta, tb = new_token(), new_token()
    a = Site(tmp_path / "a", "site-a", accept_token=ta)
    b = Site(tmp_path / "b", "site-b", accept_token=tb, repl={"remote_url": a.url(), "remote_token": ta})
    a.repl = dict(b.repl, remote_url=b.url(), remote_token=tb)
    a.write_config()
    sites = [a, b]
    try:
        a.start()
        b.start()
        ac, bc = a.client(), b.client()
        w = Workload()
        for i in range(60):
            assert w.put(ac, "both", "from-a-%02d" % i, b"a" * (10 + i)).status == 200
            assert w.put(bc, "both", "from-b-%02d" % i, b"b" * (10 + i)).status == 200
        for i in range(0, 60, 6):
            assert w.delete(bc, "both", "from-a-%02d" % i).status == 204
        converge_or_fail(a, b, timeout=60)
        b.stop()
        for p in b.workdir.iterdir():
            if p.name.startswith("store.img"):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        b.start()
        wait_until(lambda: any(e.get("reason") == "store replaced" for e in log_events(a, "full sync finished") +
                               log_events(a, "full sync started")), 60, interval=0.1, what="A's rebuild of B")
        wait_until(lambda: target_sync(a)["phase"] == "done" and target_sync(b)["phase"] == "done", 60, interval=0.1,
                   what="both syncs done")
        converge_or_fail(a, b, timeout=60)
        for site, name in ((a, "A"), (b, "B")):
            d = w.check(site, name)
            assert not d, "\n".join(d)
        assert target_sync(b)["objects_failed"] == 0 and target_sync(a)["objects_failed"] == 0
    finally:
        problems = finish_sites(sites)
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


def test_resync_usage_errors_and_a_stopped_repld(pair):
    a, b = pair()
    for args, rc, text in [(("--resync",), 2, "--target"), (("--cancel",), 2, "--target"),
                           (("--resync", "--cancel", "--target", "b"), 2, "--target"),
                           (("--bucket", "photos", "--status"), 2, "--bucket goes with --resync"),
                           (("--resync", "--target", "b", "--bucket"), 2, "--bucket: expected"),
                           (("--resync", "--target", "127.0.0.1"), 1, "repld is not running")]:
        r = a.repld_cmd(*args)
        assert r.returncode == rc and text in r.stderr, (args, r)


def test_a_sync_retries_refused_events_counts_the_lost_causes_and_goes_on(tmp_path):
    """Against a scripted replica that answers "retry" (507) for two keys: each is sent retry_attempts + 1
    times, then counted failed with its error kept, and every other object still ships."""
    token = new_token()
    fake = FakeReplica(token=token)
    a = Site(tmp_path / "a", "site-a", repl=None)
    try:
        a.start()
        ac = a.client()
        for i in range(30):
            assert ac.put("refused", "k%02d" % i, b"v" * (5 + i)).status == 200
        a.stop()
        a.repl = {"remote_url": fake.url, "remote_token": token, "retry_attempts": 3, "retry_delay": "50ms",
                  "batch_size": 8, "inline_threshold": "64KB"}
        a.write_config()
        fake.set_retry_keys({("refused", "k03"), ("refused", "k17")})
        a.start()
        s = wait_sync_done(a, timeout=60)
        assert s["objects_failed"] == 2 and s["objects_shipped"] == 28 and s["objects_scanned"] == 30, s
        assert "507" in s["last_error"], s
        for k in ("k03", "k17"):
            assert len(fake.events_for("refused", k)) == 4, fake.events_for("refused", k)  # 1 + retry_attempts
        assert set(fake.snapshot()["refused"]) == {"k%02d" % i for i in range(30)} - {"k03", "k17"}
        assert log_events(a, "full sync finished")[-1]["failed"] == "2"
    finally:
        problems = finish_sites([a])
        fake.close()
        problems += ["fake replica saw a bad batch: %s" % e for e in fake.errors]
        if problems:
            pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)
