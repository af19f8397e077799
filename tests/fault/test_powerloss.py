"""test_powerloss.py - power cuts under load: what was acknowledged survives the loss of every unsynced write.

Both sites (A ships to B) keep their data store and their LMDB directory on
a forgetfs mount of their own (tests/harness/forgetfs.py): a write stays in
forgetfs's memory until its file is synced. Config, logs and repld's socket
stay off the mount. While the recording client of the fault tests
(recorder.MixedOps: small and large PUTs, hot keys, DELETEs, PURGEs) writes
to A, the power is cut at a random moment on A, on B or on both: SIGKILL of
the site's daemons (nothing writes after the cut), then forgetfs drops
every unsynced write (or, in a torn cut, keeps a random subset of them at
4 KiB pages). Then each site
cut gets a new mount on the same backing directory and its daemons start
again, and before the writers resume:
  - storaged starts (a refusal fails the test with its log);
  - A holds every acknowledged operation, byte for byte with the ETag
    (recorder.check_site: lost, resurrected and torn all 0);
  - no space is leaked: used bytes are exactly the superblock plus the
    4 KiB-rounded extents of the objects listed (start-up reclaims the
    extents of writes a cut interrupted). Checked on A after every cut of A,
    on B after a cut of both (while repld is down, so that B is still);
    on B at the end, after a clean restart.
A cut of B lands while batches are being applied; B must keep each whole or
not at all, and A resend what B did not acknowledge: at the end B converges
on A (comio diff) and holds what A's clients were told, and no event failed.

test_power_cut_at_every_sync_of_the_first_start cuts the power at each
persistence point of a new site's first start in turn (forgetfs
--cut-at-sync N, N = 1, 2, ... on a fresh disk each time): storaged must
start on what is left, take a PUT and keep it.

test_replica_cut_at_every_sync_of_applying cuts B at each persistence
point of its applying a stream of A's events in turn (one batch at a time,
inline and fetched objects, DELETEs, a PURGE): after each cut, before A
resends, B holds the state after a prefix of the events sent, every
object's bytes match its ETag and no space is leaked; then B converges.

test_primary_cut_at_every_sync_of_writing_and_shipping cuts A at each
persistence point of its client's mutations and repld's shipping and
cursor commits in turn: A must start, hold what its client was told, leak
nothing, and B converge.

The victims, moments and torn cuts come from a seeded RNG; the seed is printed.
Environment:
  COMIO_POWERLOSS_SEED=N     replay the choices of a run (thread timing still varies)
  COMIO_POWERLOSS_ROUNDS=N   N cuts (a soak); the default is 50, 25 under the sanitizers
Skipped only where FUSE cannot be mounted (not root, no /dev/fuse, forgetfs not built).
"""

import http.client
import os
import random
import re
import subprocess
import threading
import time

import pytest

from harness import comio
from harness.comio import md5, settled_used
from harness.forgetfs import Forgetfs, skip_reason
from harness.recorder import MixedOps, check_both_sites, check_site, damage, inline_threshold, op_counts
from harness.replication import Workload, Writer, payload, snapshot, wait_until

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

ROUNDS = 50
SANITIZER_ROUNDS = 25  # the sanitizers make every start-up and request several times slower
WRITERS = 3
A_REPL = {"batch_size": 50}
CONVERGE_TIMEOUT = 120.0
LOAD_S = (0.05, 0.5)  # how long the writers run before a cut
VICTIMS = ("A", "B", "both")
BLOCK = 4096
SUPERBLOCK = 4096


def seed():
    env = os.environ.get("COMIO_POWERLOSS_SEED")
    return int(env) if env else random.SystemRandom().randrange(1 << 31)


def rounds():
    if os.environ.get("COMIO_POWERLOSS_ROUNDS"):
        return int(os.environ["COMIO_POWERLOSS_ROUNDS"])
    return SANITIZER_ROUNDS if comio.START_TIMEOUT > 10 else ROUNDS


def aligned(n):
    return (n + BLOCK - 1) // BLOCK * BLOCK


def listed_sizes(c, max_pages=1000):
    """The size of every object of every bucket (paged listings, bounded)."""
    sizes = []
    for b in c.raw("GET", "/").json()["buckets"]:
        start = None
        for _ in range(max_pages):
            r = c.list(b["name"], start_after=start, max_keys=1000)
            if r.status == 404:  # purged and removed meanwhile
                break
            assert r.status == 200, r
            page = r.json()
            sizes += [o["size"] for o in page["objects"]]
            if not page["is_truncated"]:
                break
            start = page["next_start_after"]
    return sizes


def leaked_bytes(site):
    """Used bytes beyond what the listed objects need (0 when reclaim accounted for every extent).
    The site must be still: no writer, no repld shipping into it."""
    c = site.client()
    try:
        sizes = listed_sizes(c)
        want = SUPERBLOCK + sum(aligned(s) for s in sizes)
        used = settled_used(c, lambda u: u == want)
        return used - want
    finally:
        c.close()


class Disk:
    """A site's forgetfs: its store image and LMDB directory live at <mnt>."""

    def __init__(self, root, name):
        self.fs = Forgetfs(root / (name + "-disk"), root / (name + "-mnt"))
        self.cuts = 0
        self.torn = 0
        self.lossy = 0  # cuts that found unsynced writes to drop

    @property
    def extra(self):
        mnt = self.fs.mountpoint
        return {"server": {"storage_path": str(mnt / "store.img"), "meta_path": str(mnt / "store.img.meta")}}

    def cut(self, torn):
        report = self.fs.cut(torn=torn)
        self.cuts += 1
        self.torn += bool(torn)
        m = re.search(r"(\d+) unsynced bytes forgotten|\d+ pages kept, (\d+) dropped", report)
        assert m, report
        self.lossy += int(m.group(1) or m.group(2)) > 0
        self.fs.start()
        return report


@pytest.fixture
def disks(tmp_path):
    """(disk of A, disk of B), mounted; unmounted after the sites' daemons are gone (this
    fixture is set up before `sites`, so it is torn down after it)."""
    made = [Disk(tmp_path, "a"), Disk(tmp_path, "b")]
    for d in made:
        d.fs.start()
    yield made
    for d in made:
        d.fs.close()


def test_power_cuts_under_load(disks, sites, figures):
    s = seed()
    n = rounds()
    print("power loss: seed %d (replay with COMIO_POWERLOSS_SEED=%d), %d cuts" % (s, s, n))
    rng = random.Random(s)
    disk_a, disk_b = disks
    a, b = sites(a_repl=A_REPL, a_extra=disk_a.extra, b_extra=disk_b.extra)
    w = Workload()
    threshold = inline_threshold(A_REPL)
    cuts = {v: 0 for v in VICTIMS}
    leaks = {"A": 0, "B": 0}
    checks = 0
    verdicts = []
    t_start = time.monotonic()

    for i in range(n):
        when = "cut %d of %d (seed %d)" % (i + 1, n, s)
        ops = MixedOps(w, "pl", s * 100 + i, threshold)  # fresh payloads every round
        writers = [Writer(a, ops.fn(t)) for t in range(WRITERS)]
        for x in writers:
            x.start()
        try:
            time.sleep(rng.uniform(*LOAD_S))
            victim = rng.choice(VICTIMS)
            torn = {"A": rng.random() < 0.5, "B": rng.random() < 0.5}
            # the power goes: every daemon of the site first (nothing writes after the cut), then the disk
            if victim in ("A", "both"):
                a.kill9_repld()
                a.kill9_storaged()
            if victim in ("B", "both"):
                b.kill9_storaged()
            if victim in ("A", "both"):
                disk_a.cut(torn["A"])
            if victim in ("B", "both"):
                disk_b.cut(torn["B"])
        finally:
            for x in writers:
                x.stop()
        for x in writers:
            x.join_checked(60)
        cuts[victim] += 1

        if victim in ("B", "both"):
            b.start_storaged()
            if victim == "both":  # repld A is down: B is still
                leaked = leaked_bytes(b)
                leaks["B"] += leaked
                assert leaked == 0, "B leaks %d bytes after %s" % (leaked, when)
        if victim in ("A", "both"):
            a.start_storaged()
            leaked = leaked_bytes(a)
            leaks["A"] += leaked
            assert leaked == 0, "A leaks %d bytes after %s" % (leaked, when)
            a.start_repld()
        v = check_site(w, a, "A")
        checks += 1
        assert v.ok, "A does not hold what its clients were told after %s (victim %s, torn %s): %s\n%s" % (
            when, victim, torn, w.summary(), v.report())
        verdicts.append(v)
        assert a.storaged.alive() and a.repld.alive() and b.storaged.alive(), "a daemon died by itself (%s)" % when

    t_cuts = time.monotonic() - t_start
    counts = op_counts(w)
    print("%d cuts %s (torn: A %d, B %d; unsynced writes dropped: A %d, B %d), %s in %.1f s" % (
        n, cuts, disk_a.torn, disk_b.torn, disk_a.lossy, disk_b.lossy, counts, t_cuts))
    assert counts["acked"] > 0, "nothing was acknowledged in %d rounds" % n

    verdict_a, verdict_b, converge_s = check_both_sites(w, a, b, s, CONVERGE_TIMEOUT)
    st = a.status()
    failed = a.list_failed()
    assert st["events_failed"] == 0 and not failed, "events failed (seed %d): %s\n%s" % (s, st, failed[:5])
    wait_until(lambda: a.status()["events_pending"] == 0, 30, what=a.describe)

    # B at rest: nothing ships into it, and a clean restart hands back what it had reserved
    a.stop_repld()
    b.stop_storaged()
    b.start_storaged()
    leaked = leaked_bytes(b)
    leaks["B"] += leaked
    assert leaked == 0, "B leaks %d bytes at the end (seed %d)" % (leaked, s)
    # the resend path ran (repld A saw B go away mid-stream), and start-up reclaimed interrupted writes
    resends = a.repld.log().count("replica unavailable; events are kept and retried")
    reclaims = a.storaged.log().count("reclaimed space left by interrupted writes") + \
        b.storaged.log().count("reclaimed space left by interrupted writes")
    figures(seed=s, cuts=n, victims="/".join(str(cuts[v]) for v in VICTIMS), torn_cuts=disk_a.torn + disk_b.torn,
            lossy_cuts=disk_a.lossy + disk_b.lossy,
            checks=checks, replica_gone=resends, reclaims=reclaims, acked=counts["acked"], unknown=counts["unknown"], **damage(verdict_a, verdict_b),
            leaked=int(leaks["A"] + leaks["B"]), keys=verdict_a.keys, converge_s=converge_s, seconds=time.monotonic() - t_start)


# --- a cut at each persistence point of a new site's first start ------------------------------------------------------

FIRST_START_SYNCS_MAX = 60  # bounds the loop: a first start syncs far fewer times
AFTER_START_S = 0.5  # how long a started storaged is watched for one more sync


def healthy(srv):
    c = comio.Client(srv.host, srv.port, timeout=1.0)
    try:
        return c.health().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        c.close()


def test_power_cut_at_every_sync_of_the_first_start(tmp_path, figures):
    """A new site's first start formats its store and its metadata. The power is cut at its
    1st sync, then (on a fresh disk) at its 2nd, and so on, until a start-up finishes before
    the cut: each time storaged must start on what the cut left, and take and keep a PUT."""
    points = 0
    for n in range(1, FIRST_START_SYNCS_MAX + 1):
        root = tmp_path / ("cut%02d" % n)
        fs = Forgetfs(root / "disk", root / "mnt", cut_at_sync=n).start()
        srv = comio.Server(root / "site", size="64MB")
        srv.storage = fs.mountpoint / "store.img"
        try:
            with open(srv.log_path, "ab") as log:
                proc = subprocess.Popen(srv.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=str(srv.workdir), env=comio.sanitizer_env())
            report = None
            deadline = time.monotonic() + comio.START_TIMEOUT
            while report is None and time.monotonic() < deadline:
                report = fs.wait_cut(0.05)
                if report is None and healthy(srv):  # started: the syncs that follow at once get a moment
                    report = fs.wait_cut(AFTER_START_S)
                    break
            proc.kill()  # the power is gone: nothing of it runs on
            if report is None:  # the start-up (and what follows it at once) synced fewer than n times
                proc.wait(timeout=30)
                fs.stop()
                break
            fs.cut()  # a thread waiting for the unanswered sync goes only now
            proc.wait(timeout=30)
            points += 1
            fs = Forgetfs(root / "disk", root / "mnt").start()
            try:
                srv.start()
            except AssertionError as e:
                raise AssertionError("storaged does not start after a power cut at sync %d of its first start "
                                     "(%s):\n%s" % (n, report, e)) from None
            c = srv.client()
            assert c.put("bkt", "k", b"after the cut %d" % n).status == 200
            srv.kill9()
            fs.cut()
            fs.start()
            srv.start()
            r = srv.client().get("bkt", "k")
            assert r.status == 200 and r.body == b"after the cut %d" % n, (n, r)
            srv.stop()
            problems = srv.finish()
            assert not problems, problems
        finally:
            if srv.alive():
                srv.kill9()
            fs.close()
    else:
        raise AssertionError("a first start synced more than %d times" % FIRST_START_SYNCS_MAX)
    assert points > 0
    figures(persistence_points=points, states_checked=points)


# --- a cut of the replica at each persistence point of its applying a stream ----------------------------------------

APPLY_SYNCS_MAX = 200  # bounds the loop: applying APPLY_OPS events syncs far fewer times
APPLY_OPS = 40
APPLY_REPL = {"workers": 1, "batch_size": 6}  # one batch at a time: B applies the log in order


def apply_workload(w, c):
    """A fixed sequence of mutations on A (small and fetched PUTs, overwrites, DELETEs, a PURGE).
    Returns the states B may hold while it applies them in order: [{(bucket, key): md5}].

    All of them are on A before repld starts, so repld ships a PUT only if its version is
    still A's (docs/replication.md, superseded events): B applies the PUTs of A's final
    objects, every DELETE and the PURGE, in order, and holds the state after some prefix
    of that sequence."""
    rng = random.Random(7)
    threshold = inline_threshold(APPLY_REPL)
    ops, final = [], {}
    for i in range(APPLY_OPS):
        bucket = "apl-purge" if i % 5 == 4 else "apl"
        key = "k%d" % rng.randrange(6)
        if i == APPLY_OPS // 2:
            assert w.purge(c, "apl-purge").status == 200
            ops.append(("purge", "apl-purge", None, None))
            final = {bk: v for bk, v in final.items() if bk[0] != "apl-purge"}
        elif i % 7 == 6 and (bucket, key) in final:
            assert w.delete(c, bucket, key).status == 204
            ops.append(("delete", bucket, key, None))
            del final[(bucket, key)]
        else:
            size = threshold + 5000 if i % 6 == 1 else rng.randrange(1, 9000)  # every sixth is fetched
            data = payload("ap%d" % i, size, rng)
            assert w.put(c, bucket, key, data).status == 200
            ops.append(("put", bucket, key, md5(data)))
            final[(bucket, key)] = md5(data)
    states, cur = [{}], {}
    for kind, bucket, key, digest in ops:
        if kind == "put" and final.get((bucket, key)) != digest:
            continue  # superseded: acknowledged by repld without being sent
        if kind == "put":
            cur[(bucket, key)] = digest
        elif kind == "delete":
            cur.pop((bucket, key), None)
        else:
            cur = {bk: v for bk, v in cur.items() if bk[0] != bucket}
        states.append(dict(cur))
    assert states[-1] == final
    return states


def site_state(site):
    return {(b, k): etag for b, objs in snapshot(site).items() for k, (_, etag) in objs.items()}


def startup_syncs(tmp_path, sites, side):
    """How many syncs a new site makes in its start-up ("a" or "b"), on a disk of its own: its
    storaged's and, on a site that ships, its repld's (which records its targets' state in the
    log when it first starts). The cuts at exact points after it are counted from there."""
    disk = Disk(tmp_path, side + "-start")
    disk.fs.start()
    try:
        pair = sites(start=False, repld=False, **{side + "_extra": disk.extra})
        site = pair[0] if side == "a" else pair[1]
        site.start()
        n = disk.fs.reset_sync_count()
        site.stop()
        return n
    finally:
        disk.fs.close()


def power_off(disk, *daemons):
    """After a --cut-at-sync cut (the disk answers nothing any more): SIGKILL the daemons on it,
    end forgetfs, then reap them (one waiting for the unanswered sync goes only then)."""
    procs = []
    for d in daemons:
        proc, d.proc = d.proc, None
        assert proc is not None and proc.poll() is None, "a daemon died by itself after the cut:\n" + d.log_tail(40)
        proc.kill()
        procs.append(proc)
    disk.fs.cut()
    for proc in procs:
        proc.wait(timeout=30)


def pending_events(a):
    """A's events_pending, or None when A does not answer within a moment (its disk may be frozen)."""
    c = a.client(timeout=2.0, register=False)
    try:
        return c.repl_status()["events_pending"]
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()


def wait_cut_or_shipped(disk, a, writing=lambda: False, timeout=60.0):
    """Waits (bounded) until the disk's --cut-at-sync cut comes, or nobody is `writing` and A
    has nothing left to ship. Returns forgetfs's report of the cut, or None when everything
    was written and shipped first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = disk.fs.wait_cut(0.05)
        if report is not None:
            return report
        if not writing() and pending_events(a) == 0 and disk.fs.wait_cut(0) is None:
            return None
    raise AssertionError("neither a cut nor the end of shipping within %.0f s" % timeout)


def leak_free_then_converged(w, a, b, cut, n, report):
    """After a cut at sync n of site `cut` (a or b), restarted and checked: no space leaked on
    it; then repld resends, B converges on A and both hold what A's client was told. Stops both."""
    leaked = leaked_bytes(cut)
    assert leaked == 0, "%s leaks %d bytes after a cut at sync %d (%s)" % (cut.site_id, leaked, n, report)
    a.start_repld()
    check_both_sites(w, a, b, n, CONVERGE_TIMEOUT)
    a.stop()
    b.stop()


def test_replica_cut_at_every_sync_of_applying(tmp_path, sites, figures):
    """B is cut at its 1st, 2nd, ... sync after its start-up, while it applies A's log
    (one batch at a time, fetched objects among them), until it applies all of it first.
    After each cut, and before A resends anything, B must hold the state after some prefix
    of the events it is sent (never a later event without the earlier ones), leak no space;
    then A resends and B converges and holds what A's client was told."""
    base = startup_syncs(tmp_path, sites, "b")
    points = 0
    for n in range(1, APPLY_SYNCS_MAX + 1):
        disk = Disk(tmp_path, "b%03d" % n)
        disk.fs.cut_at_sync = base + n
        disk.fs.start()
        try:
            a, b = sites(start=False, repld=False, a_repl=APPLY_REPL, b_extra=disk.extra)
            b.start()
            a.start(repld=False)
            w = Workload()
            c = a.client()
            states = apply_workload(w, c)
            a.start_repld()
            report = wait_cut_or_shipped(disk, a)
            if report is None:  # B applied everything before its n-th sync
                break
            points += 1
            a.kill9_repld()  # nothing resent before B is looked at
            power_off(disk, b.storaged)
            disk.fs.cut_at_sync = None
            disk.fs.start()
            b.start_storaged()
            got = site_state(b)
            assert got in states, "after a cut at sync %d of applying (%s), B holds no prefix of the " \
                "events sent:\n%r" % (n, report, sorted(got.items()))
            cb = b.client()
            for (bucket, key), etag in sorted(got.items()):  # the bytes too, not only the listing
                body = cb.get(bucket, key).body
                assert md5(body) == etag, "after a cut at sync %d (%s), B's %s/%s is torn: %d bytes, md5 %s, " \
                    "listed %s" % (n, report, bucket, key, len(body), md5(body), etag)
            leak_free_then_converged(w, a, b, b, n, report)
        finally:
            disk.fs.close()
    else:
        raise AssertionError("applying %d events synced more than %d times" % (APPLY_OPS, APPLY_SYNCS_MAX))
    assert points > 0
    figures(persistence_points=points, states_checked=points)


# --- a cut of the primary at each persistence point of its taking and shipping writes ------------------------------

PRIMARY_OPS = 12
PRIMARY_SYNCS_MAX = 300  # bounds the loop: PRIMARY_OPS mutations and their shipping sync far fewer times


def primary_workload(w, c, stop):
    """PRIMARY_OPS mutations on A, one after the other (small and fetched PUTs, an overwrite,
    a DELETE, a PURGE), until stop() says the power is gone."""
    rng = random.Random(11)
    big = inline_threshold(REPL_FIXED) + 3000
    plan = [("put", "pri", "a", 100), ("put", "pri", "b", big), ("put", "pri-x", "c", 5000), ("put", "pri", "a", 7000),
            ("delete", "pri", "b", 0), ("put", "pri-x", "d", big), ("purge", "pri-x", None, 0), ("put", "pri", "e", 1),
            ("put", "pri", "a", 0), ("put", "pri", "f", 9000), ("delete", "pri", "e", 0), ("put", "pri", "g", 300)]
    assert len(plan) == PRIMARY_OPS
    for i, (kind, bucket, key, size) in enumerate(plan):
        if stop():
            return
        if kind == "put":
            w.put(c, bucket, key, payload("pri%d" % i, size, rng))
        elif kind == "delete":
            w.delete(c, bucket, key)
        else:
            w.purge(c, bucket)


REPL_FIXED = {"workers": 2, "batch_size": 4}


def test_primary_cut_at_every_sync_of_writing_and_shipping(tmp_path, sites, figures):
    """A is cut at its 1st, 2nd, ... sync after its start-up while its client writes and its
    repld ships and trims (storaged's commits, the bodies, repld's cursor commits), until all
    of it is done first. After each cut A must start, hold what its client was told, leak no
    space; then repld resends and B converges and holds it too."""
    base = startup_syncs(tmp_path, sites, "a")
    points = 0
    for n in range(1, PRIMARY_SYNCS_MAX + 1):
        disk = Disk(tmp_path, "a%03d" % n)
        disk.fs.cut_at_sync = base + n
        disk.fs.start()
        try:
            a, b = sites(start=False, a_repl=REPL_FIXED, a_extra=disk.extra)
            b.start()
            a.start()
            w = Workload()
            c = a.client(timeout=30, register=False)
            writer = threading.Thread(target=primary_workload, args=(w, c, lambda: disk.fs.frozen), daemon=True)
            writer.start()
            report = wait_cut_or_shipped(disk, a, writing=writer.is_alive)
            if report is None:  # everything was written and shipped before A's n-th sync
                writer.join(30)
                c.close()
                break
            points += 1
            power_off(disk, a.repld, a.storaged)
            writer.join(30)  # its request in flight broke with storaged: of unknown outcome
            assert not writer.is_alive()
            c.close()
            disk.fs.cut_at_sync = None
            disk.fs.start()
            a.start_storaged()
            v = check_site(w, a, "A")
            assert v.ok, "after a cut at sync %d (%s), A does not hold what its client was told: %s\n%s" % (
                n, report, w.summary(), v.report())
            leak_free_then_converged(w, a, b, a, n, report)
        finally:
            disk.fs.close()
    else:
        raise AssertionError("%d mutations synced more than %d times" % (PRIMARY_OPS, PRIMARY_SYNCS_MAX))
    assert points > 0
    figures(persistence_points=points, states_checked=points)
