"""test_four_sites.py - four sites on loopback, each with its own storaged (and repld where it ships).

1. Fan-out A -> B, C, D (replication.targets) with D down for minutes: a client keeps writing to A (PUT inline
   and over inline_threshold, DELETE, PURGE of a bucket) for the whole outage; B and C keep up (comio diff),
   A's status shows D's pending events and bytes growing while B's and C's are 0; once D is back all four
   converge, the log drains, nothing failed, and every site holds what the client's own records say.
2. Four writers in a full mesh (every site lists the three others as targets: any graph of targets works,
   docs/replication.md "Topologies"; the mesh has fan-out, two-way pairs and rings of three and four in one):
   concurrent writers on all four sites hammer the same hot keys with PUT, DELETE and a few PURGEs while the
   repld or storaged of random sites is SIGKILLed and restarted. After: all four identical by `comio diff`,
   the final state is the last-writer-wins winner of the acknowledged writes, every acknowledged write is the
   winner, a kept conflict loser, or was followed by a later write, every kept loser is a write a client
   sent, and the sites keep the same losers. A tail written with every repld dead ends with exactly the
   losers the clients' records predict kept on every site.
3. A restart of repld while a target is down counts each event once (a bug a variant of 1 found).
After each, every target counted each record of its site's log exactly once.

Durations: the outage is 60 s in the plain build (six times repld's backoff cap, so D is retried at the cap
again and again; COMIO_SOAK=1 makes it 10 minutes) and 20 s under a sanitizer (comio.sanitizer()); the mesh
writes less under a sanitizer, least under ThreadSanitizer. Every loop and wait is bounded.
"""

import os
import random
import threading
import time

import pytest

from harness import comio
from harness.comio import md5
from harness.replication import (Site, Workload, Writer as LoadWriter, comio_diff, converge_or_fail, finish_sites,
                                 new_token, payload, snapshot, target_status, wait_until)
from test_conflicts import conflicts
from test_topology_versions import (BUCKET, DELETE, KEYS, PURGE, PUT, Writer, check_oracle, converged,
                                    create_bucket_everywhere, describe, oracle, version_of)

SANITIZER = comio.sanitizer()
BACKOFF_CAP = 10.0  # repld/ship.c BACKOFF_CAP_MS: the longest repld waits between two attempts on a dead target


@pytest.fixture
def four(tmp_path):
    """make(build) -> sites: build(tmp_path) returns the sites; every one is torn down after the test."""
    made = []

    def make(build):
        sites = build(tmp_path)
        made.extend(sites)
        return sites

    yield make
    problems = finish_sites(made)
    if problems:
        pytest.fail("teardown:\n" + "\n".join(problems), pytrace=False)


# --- 1. fan-out with one target down for minutes -------------------------------------------------------------------

# What the outage must outlast is repld's backoff: 200 ms doubling reaches BACKOFF_CAP after about 13 s, and from
# then on D is tried every BACKOFF_CAP; 60 s keeps it there for several attempts (it was 120 s when the cap was
# longer). A soak run (COMIO_SOAK=1) holds D down for 10 minutes.
if os.environ.get("COMIO_SOAK", "") not in ("", "0"):
    OUTAGE = 600.0
else:
    OUTAGE = 60.0 if SANITIZER is None else 20.0
FAN_BUCKETS = ("fan-a", "fan-b", "fan-purged")
FAN_KEYS = 40
INLINE_THRESHOLD = 64 * 1024  # harness.replication.REPL_DEFAULTS
PURGE_EVERY = 300  # ops: one PURGE of fan-purged every ~10 s


def fanout_sites(tmp_path):
    tokens = {n: new_token() for n in "bcd"}
    receivers = [Site(tmp_path / n, "site-" + n, accept_token=tokens[n]) for n in "bcd"]
    targets = [{"name": r.site_id[-1], "url": r.url(), "token": tokens[r.site_id[-1]]} for r in receivers]
    a = Site(tmp_path / "a", "site-a", repl={"targets": targets})
    return [a] + receivers


class FanClient:
    """One client writing to A, op after op, recording every reply in a Workload (the oracle). Its ops never
    overlap, so the Workload's records are exact: no key is ambiguous. pause() returns once the op in flight
    has its reply; resume() lets the next one go."""

    def __init__(self, site, seed, wl):
        self.wl = wl
        self.rng = random.Random(seed)
        self.gate = threading.Lock()
        self.large = 0
        self.writer = LoadWriter(site, self.op)

    def op(self, c, i):
        with self.gate:
            rng = self.rng
            if i % PURGE_EVERY == PURGE_EVERY - 1:
                self.wl.purge(c, "fan-purged")
                return
            bucket, key = rng.choice(FAN_BUCKETS), "k%02d" % rng.randrange(FAN_KEYS)
            p = rng.random()
            if p < 0.06:  # over inline_threshold: D fetches it from A by presigned URL
                self.large += 1
                self.wl.put(c, bucket, key, payload("%s/%s %d" % (bucket, key, i), rng.randint(INLINE_THRESHOLD + 1,
                                                                                              2 * INLINE_THRESHOLD), rng))
            elif p < 0.7:
                self.wl.put(c, bucket, key, payload("%s/%s %d" % (bucket, key, i), rng.randint(1, 4000), rng))
            else:
                self.wl.delete(c, bucket, key)
        time.sleep(0.02)  # a steady stream, not a flood: the outage is long

    def pause(self):
        self.gate.acquire()

    def resume(self):
        self.gate.release()


def listed_versions(site):
    """{(bucket, key): (version, origin)} of every object the site lists in FAN_BUCKETS."""
    c = site.client()
    out = {}
    for bk in FAN_BUCKETS:
        _, pages = c.list_all(bk)
        out.update({(bk, o["key"]): (o["version"], o["origin"]) for p in pages for o in p["objects"]})
    return out


def b_and_c_keep_up(a, b, c, what):
    """B and C converge with A (comio diff exit 0, after a bounded wait) and A's status shows nothing pending
    for them; returns A's status."""
    converge_or_fail(a, b, timeout=60)
    converge_or_fail(a, c, timeout=60)

    def caught_up():
        st = a.status()
        return st if all(target_status(st, n)["events_pending"] == 0 for n in "bc") else None

    st = wait_until(caught_up, 30, what=lambda: "B and C acknowledged everything (%s)\n%s" % (what, a.describe()))
    for s in (b, c):
        assert comio_diff(a, s)[0] == [], (what, s.site_id)
    return st


def assert_counted_once(site, st):
    """Once drained and with nothing failed, every target of `site` counted each record of its log once: as
    replicated (superseded ones included) or as skipped (the target is its origin)."""
    for t in st["targets"]:
        assert t["events_replicated"] + t["events_skipped"] == st["log_head_seq"], (site.site_id, t,
                                                                                    st["log_head_seq"])


@pytest.mark.long
def test_fanout_target_down_for_minutes_then_back(four):
    """D's storaged is SIGKILLed for OUTAGE seconds while a client writes to A. What bounds D's catch-up: repld
    backs off from a dead target starting at retry_delay (200 ms here) and doubling up to BACKOFF_CAP_MS (10 s);
    the dead target's state stays in A's log meanwhile. Once D is back, A's next attempt comes at most
    BACKOFF_CAP after, then the backlog drains at full speed (seconds for a few thousand events); the test
    allows BACKOFF_CAP + 90 s."""
    a, b, c, d = four(fanout_sites)
    for s in (b, c, d, a):
        s.start()
    ac = a.client()
    for bk in FAN_BUCKETS:
        assert ac.create_bucket(bk).status in (200, 201)
    wl = Workload()  # the client's records, before and during the outage
    fc = FanClient(a, 4, wl)
    fc.writer.count = 60
    fc.writer.start()
    fc.writer.join_checked()
    for s in (b, c, d):
        converge_or_fail(a, s, timeout=60)

    # D goes down (SIGKILL: no chance to finish anything) for OUTAGE seconds; the client writes all along
    d.kill9_storaged()
    t_down = time.monotonic()
    fc = FanClient(a, 5, wl)
    fc.writer.start()
    time.sleep(OUTAGE / 2 - 5)
    fc.pause()
    try:
        st = b_and_c_keep_up(a, b, c, "mid-outage")
    finally:
        fc.resume()
    mid = target_status(st, "d")
    assert mid["state"] == "backing_off" and mid["last_error"], st
    assert mid["events_pending"] > 0 and mid["bytes_pending"] > 0, st
    assert st["log_pending"] >= mid["events_pending"], st  # not trimmed: D still needs them
    print("mid-outage (%.0f s): D pending %d events, %d bytes" % (time.monotonic() - t_down, mid["events_pending"],
                                                                 mid["bytes_pending"]))
    time.sleep(max(0.0, t_down + OUTAGE - 5 - time.monotonic()))
    fc.pause()
    fc.writer.stop()
    fc.resume()
    fc.writer.join_checked()
    st = b_and_c_keep_up(a, b, c, "end of the outage")
    end = target_status(st, "d")
    assert end["state"] == "backing_off", st
    assert 0 <= end["retry_in_seconds"] <= BACKOFF_CAP, st  # the backoff has grown, but never past its cap
    assert end["events_pending"] > mid["events_pending"] and end["bytes_pending"] > mid["bytes_pending"], (mid, end)
    counts = wl.counts
    assert counts["put"] > 0 and counts["delete"] > 0 and counts["purge"] > 0 and fc.large > 0, counts
    assert counts["unknown"] == 0 and counts["refused"] == 0, counts
    wait_until(lambda: time.monotonic() >= t_down + OUTAGE, OUTAGE, interval=0.2, what="the end of the outage")
    print("end of outage (%.0f s): D pending %d events, %d bytes; %s" %
          (time.monotonic() - t_down, end["events_pending"], end["bytes_pending"], wl.summary()))

    # D is back: it catches up within the bound, and A's log drains
    d.start_storaged()
    t_back = time.monotonic()
    converge_or_fail(a, d, timeout=BACKOFF_CAP + 90)
    print("D caught up %.1f s after it was back" % (time.monotonic() - t_back))

    def log_drained():
        s = a.status()
        return s if s["log_pending"] == 0 and all(t["events_pending"] == 0 for t in s["targets"]) else None

    st = wait_until(log_drained, 30, what=lambda: "A's log drained\n" + a.describe())
    td = target_status(st, "d")
    assert td["events_failed"] == 0 and td["events_failed_total"] == 0 and td["state"] == "up", st
    assert_counted_once(a, st)
    assert st["events_failed"] == 0 and st["bytes_pending"] == 0, st
    assert a.list_failed() == []
    for s in (b, c, d):
        assert comio_diff(a, s)[0] == [], s.site_id

    # every site holds exactly what the client's records say: the last acknowledged PUT of each key, nothing
    # it deleted or purged, no key it never wrote
    present, absent, ambiguous = wl.expected()
    assert not ambiguous, ambiguous
    want = {}
    for (bk, k), v in present.items():
        want.setdefault(bk, {})[k] = v
    assert absent, "the client deleted nothing"
    last_put = {(op.bucket, op.key): op.version for op in wl.ops if op.kind == "put"}  # ops are in order
    want_versions = {bk_k: (last_put[bk_k], "site-a") for bk_k in present}
    for s in (a, b, c, d):
        got = snapshot(s)
        assert got == want, (s.site_id, wl.check(got, s.site_id)[:20])
        assert listed_versions(s) == want_versions, s.site_id  # and at the version A gave each


# --- 2. four writers in a full mesh, with kills --------------------------------------------------------------------

MESH = "abcd"
# many attempts: a site killed for a moment must not turn events into failed ones
MESH_REPL = {"retry_attempts": 100, "retry_delay": "100ms", "batch_size": 20}
if SANITIZER is None:
    MESH_OPS, MESH_KILLS, TAIL_OPS = 1500, 8, 40
elif SANITIZER == "thread":
    MESH_OPS, MESH_KILLS, TAIL_OPS = 60, 2, 15
else:
    MESH_OPS, MESH_KILLS, TAIL_OPS = 400, 3, 25


def mesh_sites(tmp_path):
    """Four sites, each shipping to the three others (one target each) and accepting one token from all."""
    ports = {n: comio.free_port() for n in MESH}
    tokens = {n: new_token() for n in MESH}
    sites = []
    for n in MESH:
        targets = [{"name": "site-" + m, "url": "http://127.0.0.1:%d" % ports[m], "token": tokens[m]}
                   for m in MESH if m != n]
        sites.append(Site(tmp_path / n, "site-" + n, port=ports[n], repl=dict(MESH_REPL, targets=targets),
                          accept_token=tokens[n], size="64MB"))
    return sites


def kill_and_restart(site, what):
    if what in ("repld", "both"):
        site.kill9_repld()
    if what in ("storaged", "both"):
        site.kill9_storaged()
    threading.Event().wait(0.2)
    if what in ("storaged", "both"):
        site.start_storaged()
    if what in ("repld", "both"):
        site.start_repld()


def run_writers(writers, timeout=300):
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout)
        assert not w.is_alive(), "a writer did not finish"
        assert w.error is None, w.error


def kept_losers(sites):
    """{site id: {(bucket, key, version, origin): record}} of the losers each site keeps."""
    return {s.site_id: conflicts(s) for s in sites}


def same_losers_everywhere(kept, what):
    """The kept losers of every site, compared with the first site's."""
    sids = sorted(kept)
    first = set(kept[sids[0]])
    differ = {sid: {"only here": sorted(set(kept[sid]) - first), "only on %s" % sids[0]: sorted(first - set(kept[sid]))}
              for sid in sids[1:] if set(kept[sid]) != first}
    assert not differ, "%s: the sites keep different losers: %s" % (what, differ)


def explained_by_unknown(writers, site_id, key, loser):
    """A kept loser that no reply acknowledged is allowed only as a write sent to its origin whose reply never
    came (the site was being killed), with the same op and, for a PUT, the same bytes."""
    return any(op == loser["op"] and k == key and (op == DELETE or digest == loser["etag"])
               for w in writers if w.site.site_id == site_id for op, k, digest in w.unknown)


def check_losers(kept, writers, final, sites):
    """Every kept loser is a write a client sent (acknowledged: that op and those bytes; else one whose reply
    never came), and never the version the sites hold; a few kept PUTs are read back by version. Returns
    {(key, (version, origin))} of all listed."""
    acked = {(k, ver): (op, digest) for w in writers for (op, k, ver, digest) in w.acked if op != PURGE}
    listed = set()
    for site_id, recs in kept.items():
        for (bucket, key, version, origin), rec in recs.items():
            loser = rec["loser"]
            assert bucket == BUCKET and key in KEYS, (site_id, rec)
            listed.add((key, (version, origin)))
            if (key, (version, origin)) in acked:
                op, digest = acked[(key, (version, origin))]
                assert loser["op"] == op and (op == DELETE or loser["etag"] == digest), (site_id, rec, op, digest)
            else:
                assert explained_by_unknown(writers, origin, key, loser), ("a loser no client wrote", site_id, rec)
            held = final.get(key)
            assert held is None or held[0] != (version, origin), ("the winner is listed as a loser", site_id, rec)
    for site in sites:
        c = site.client()
        puts = [(x, rec) for x, rec in kept[site.site_id].items() if rec["loser"]["op"] == PUT]
        for (bucket, key, version, origin), rec in puts[:3]:
            r = c.raw("GET", "/%s/%s?version=%d&origin=%s" % (bucket, key, version, origin))
            assert r.status == 200 and md5(r.body) == rec["loser"]["etag"], (site.site_id, rec, r)
            assert version_of(r) == (version, origin), (site.site_id, rec, dict(r.headers))
    return listed


def check_every_write_accounted_for(writers, listed):
    """Every acknowledged write is the winner of its key, a kept loser, or followed by a later write of its key
    (or a purge of its bucket) that may have seen it. (The exact rule, a site took a write whose context had
    seen it, needs the contexts, which clients do not see; "a later version" is what it implies.)
    Returns how many of each."""
    winners = oracle(writers)
    latest = {}
    for w in writers:
        for op, k, ver, _ in w.acked:
            for key in (KEYS if op == PURGE else [k]):
                latest[key] = max(latest.get(key, ver), ver)
    unknown_keys = set()  # keys a write without a reply may have followed
    for w in writers:
        for op, k, _ in w.unknown:
            unknown_keys.update(KEYS if op == PURGE else [k])
    how = {"winner": 0, "kept": 0, "followed": 0}
    for w in writers:
        for op, k, ver, _ in w.acked:
            if op == PURGE:
                continue
            if winners[k][2] == ver:
                how["winner"] += 1
            elif (k, ver) in listed:
                how["kept"] += 1
            elif latest[k] > ver or k in unknown_keys:
                how["followed"] += 1
            else:
                raise AssertionError("acknowledged %s %s %r is neither the winner, nor kept, nor followed" %
                                     (op, k, ver))
    return how


@pytest.mark.long
def test_four_writers_full_mesh_with_kills(four):
    """Phase 1: four writers (one per site) hammer the six hot keys with PUT (some over inline_threshold) and
    DELETE, and two of them PURGE the bucket once, while the repld, the storaged or both of a random site are
    SIGKILLed and restarted MESH_KILLS times. Phase 2, the tail: every repld is SIGKILLed and the four write
    the hot keys again, so that every tail write is concurrent with the other sites' (and follows all of
    phase 1, which had converged); then the replds start again. For each hot key the kept losers are then
    exactly the last tail write of each site that is not the winner: known from the clients' records alone."""
    sites = four(mesh_sites)
    for s in sites:
        s.start()
    create_bucket_everywhere(sites)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print("seed %d: %d ops per writer, %d kills, a tail of %d" % (seed, MESH_OPS, MESH_KILLS, TAIL_OPS))
    # a PURGE or two: one writer purges at a third of its run, another at its middle
    purge_every = {"site-a": MESH_OPS // 3 + 1, "site-c": MESH_OPS // 2 + 1}
    writers = [Writer(s, seed + i, MESH_OPS, purge_every=purge_every.get(s.site_id, 10 * MESH_OPS))
               for i, s in enumerate(sites)]
    for w in writers:
        w.start()
    kills = []
    for n in range(1, MESH_KILLS + 1):
        wait_until(lambda: min(w.done_ops for w in writers) >= n * MESH_OPS // (MESH_KILLS + 1) or
                   any(not w.is_alive() for w in writers), 300, what="the writers under way")
        victim, what = rng.choice(sites), rng.choice(["repld", "storaged", "both"])
        kills.append((victim.site_id, what))
        kill_and_restart(victim, what)
    for w in writers:
        w.join(300)
        assert not w.is_alive(), "a writer did not finish"
        assert w.error is None, w.error
    print("kills: %s; %d writes without a reply" % (kills, sum(len(w.unknown) for w in writers)))

    final, = wait_until(lambda: converged(sites), 180, what=lambda: describe(sites))
    for s in sites[1:]:
        assert comio_diff(sites[0], s)[0] == [], s.site_id
    check_oracle(final, writers)
    assert {o for w in writers for (o, _, _, _) in w.acked} == {PUT, DELETE, PURGE}
    kept = kept_losers(sites)
    listed1 = check_losers(kept, writers, final, sites)
    how = check_every_write_accounted_for(writers, listed1)
    print("phase 1: acknowledged writes %s; losers kept %s; conflicts counted %s" %
          (how, {sid: len(r) for sid, r in kept.items()},
           {s.site_id: s.client().metrics().value("comio_replication_conflicts_total") for s in sites}))
    same_losers_everywhere(kept, "after phase 1")

    # phase 2: the tail, written with every repld dead
    for s in sites:
        s.kill9_repld()
    # one PURGE in the tail (site-b, half-way): it removes every kept loser ordered before it, on every site
    tail = [Writer(s, seed + 10 + i, TAIL_OPS, purge_every=TAIL_OPS // 2 + 1 if s.site_id == "site-b" else 10 * TAIL_OPS)
            for i, s in enumerate(sites)]
    run_writers(tail)
    assert all(not w.unknown for w in tail), [w.unknown for w in tail]
    for s in sites:
        s.start_repld()
    final, = wait_until(lambda: converged(sites), 120, what=lambda: describe(sites))
    everything = writers + tail
    check_oracle(final, everything)
    kept = kept_losers(sites)
    listed = check_losers(kept, everything, final, sites)
    how = check_every_write_accounted_for(everything, listed)
    winners = oracle(everything)
    # the tail follows all of phase 1 (every site had taken it), and its purge covers every key
    want = set()
    purged = max(ver for w in tail for (op, _, ver, _) in w.acked if op == PURGE)
    for w in tail:  # the last tail write of each site on each key, unless it won or the purge orders after it
        last = {}
        for op, k, ver, _ in w.acked:
            if op != PURGE:
                last[k] = ver
        want |= {(BUCKET, k) + ver for k, ver in last.items() if winners[k][2] != ver and ver > purged}
    print("phase 2: acknowledged writes %s; losers kept %s, expected %d" %
          (how, {sid: len(r) for sid, r in kept.items()}, len(want)))
    assert want, "the tail raced on no key"
    for sid, recs in kept.items():
        assert set(recs) == want, (sid, "kept but not expected", sorted(set(recs) - want), "expected, not kept",
                                   sorted(want - set(recs)))
    same_losers_everywhere(kept, "after the tail")
    for s in sites:
        assert s.list_failed() == [], s.site_id
        st = s.status()
        assert st["events_pending"] == 0 and st["log_pending"] == 0, s.describe()
        assert_counted_once(s, st)


def test_a_repld_restart_while_a_target_is_down_counts_each_event_once(four):
    """Found by a variant of the fan-out test (A's repld SIGKILLed during D's outage): afterwards D's
    events_replicated exceeded the number of events A had logged. An event retired above the target's cursor
    (here: superseded, while an older event waits for the dead target) was counted when retired, the count
    persisted, and after a restart repld retires it again from the cursor: counted twice. Once drained, each
    target's events_replicated + events_skipped must be the number of records A logged."""
    a, b, c, d = four(fanout_sites)
    for s in (b, c):
        s.start()
    a.start(repld=False)  # D is down from the start
    ac = a.client()
    assert ac.put("fan-a", "waits", b"the oldest event D has not had").status == 200
    assert ac.put("fan-a", "k", b"v1").status == 200  # superseded by v2 before it ships: retired unsent
    assert ac.put("fan-a", "k", b"v2").status == 200
    a.start_repld()

    def tried_d():
        st = a.status()
        td = target_status(st, "d")
        return st if td["last_error"] and td["cursor"] == 0 else None

    # repld's first attempt at D retires k's v1 (superseded) above D's cursor, which "waits" holds at 0; the
    # dispatcher persists within 10 ms of that (PERSIST_EVERY_MS): give it half a second
    st = wait_until(tried_d, 30, what=lambda: "an attempt at D\n" + a.describe())
    threading.Event().wait(0.5)
    logged = st["log_head_seq"]
    a.kill9_repld()
    a.start_repld()
    d.start_storaged()
    for s in (b, c, d):
        converge_or_fail(a, s, timeout=BACKOFF_CAP + 30)

    def drained():
        s = a.status()
        return s if s["log_pending"] == 0 and all(t["events_pending"] == 0 for t in s["targets"]) else None

    st = wait_until(drained, 30, what=lambda: "A's log drained\n" + a.describe())
    assert st["log_head_seq"] == logged and st["events_failed"] == 0, st
    assert_counted_once(a, st)
