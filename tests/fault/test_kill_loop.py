"""test_kill_loop.py - SIGKILL of a daemon, again and again, under load: nothing lost, nothing back, nothing torn.

Each round kills one of A's storaged, A's repld or B's storaged with SIGKILL
at a random moment while several writer threads run the recording workload
(recorder.MixedOps: small and large PUTs, hot keys, DELETEs, PURGEs), keeps
it down for a random moment, restarts it and goes on. At the end A must hold
what its clients were told (recorder.check_site: lost=0, resurrected=0,
torn=0), and B must converge on A (keys, sizes, ETags, every byte).

It runs twice: over a plain link, and with compression: zstd and a
bandwidth_limit (harness/links.py), the latter for COMPRESSED_ROUNDS rounds
only, to keep CI's time.

The victims and delays come from a seeded RNG; the seed is printed.
Environment:
  COMIO_FAULT_SEED=N     replay the choices of a run (thread timing still varies)
  COMIO_SOAK=1           a soak: 200 rounds in place of 20
  COMIO_SOAK_ROUNDS=N    a soak of N rounds
"""

import os
import random
import time

import pytest

from harness.recorder import (ABSENT, MixedOps, allowed_states, check_both_sites, check_site, damage, fault_seed,
                              inline_threshold, op_counts)
from harness.links import LINKS, check_link, use_link
from harness.replication import Op, Workload, Writer, snapshot, wait_until


ROUNDS = 20
COMPRESSED_ROUNDS = 8  # the zstd + bandwidth_limit run: the same faults, fewer of them
SOAK_ROUNDS = 200
WRITERS = 3
A_REPL = {"batch_size": 50}
CONVERGE_TIMEOUT = 120.0
PROGRESS_OPS = 20  # acknowledged operations after each restart before the next round
PROGRESS_TIMEOUT = 60.0
VICTIMS = ("storaged A", "repld A", "storaged B")


def rounds(link="plain"):
    if os.environ.get("COMIO_SOAK_ROUNDS"):
        return int(os.environ["COMIO_SOAK_ROUNDS"])
    if os.environ.get("COMIO_SOAK", "") not in ("", "0"):
        return SOAK_ROUNDS
    return ROUNDS if link == "plain" else COMPRESSED_ROUNDS


def assert_all_alive(a, b, when):
    """Fails with the log of any daemon that died by itself (a crash: only the test kills)."""
    for name, d in (("storaged A", a.storaged), ("repld A", a.repld), ("storaged B", b.storaged)):
        assert d.alive(), "%s died by itself %s; log:\n%s" % (name, when, d.log_tail(80))


def kill_and_restart(a, b, victim, down_s):
    if victim == "storaged A":
        a.kill9_storaged()
        time.sleep(down_s)
        a.start_storaged()
    elif victim == "repld A":
        a.kill9_repld()
        time.sleep(down_s)
        a.start_repld()
    else:
        b.kill9_storaged()
        time.sleep(down_s)
        b.start_storaged()


@pytest.mark.parametrize("link", list(LINKS))
def test_kill_loop(sites, figures, monkeypatch, link):
    seed = fault_seed()
    n = rounds(link)
    print("kill loop: seed %d (replay with COMIO_FAULT_SEED=%d), %d rounds, %s link" % (seed, seed, n, link))
    rng = random.Random(seed)
    a, b = sites(a_repl=use_link(monkeypatch, link, A_REPL))
    w = Workload()
    ops = MixedOps(w, "kl", seed, inline_threshold(A_REPL))
    writers = [Writer(a, ops.fn(t)) for t in range(WRITERS)]
    t_start = time.monotonic()
    for x in writers:
        x.start()
    try:
        wait_until(lambda: snapshot(b), 30, what=lambda: "B receiving before the first kill\n" + a.describe())
        kills = {v: 0 for v in VICTIMS}
        for i in range(n):
            time.sleep(rng.uniform(0.1, 0.8))  # a random moment under load
            assert_all_alive(a, b, "before round %d (seed %d)" % (i, seed))
            victim = rng.choice(VICTIMS)
            kill_and_restart(a, b, victim, rng.uniform(0.0, 0.4))
            kills[victim] += 1
            acked = op_counts(w)["acked"]
            wait_until(lambda: op_counts(w)["acked"] >= acked + PROGRESS_OPS, PROGRESS_TIMEOUT,
                       what=lambda: "writes acknowledged after restarting %s (round %d, seed %d)\n%s" %
                       (victim, i, seed, a.describe()))
            assert not [x for x in writers if x.error is not None], [x.error for x in writers]
    finally:
        for x in writers:
            x.stop()
    for x in writers:
        x.join_checked(60)
    assert_all_alive(a, b, "after the last round (seed %d)" % seed)
    t_writes = time.monotonic() - t_start
    counts = op_counts(w)
    print("%d rounds (%s), %s in %.1f s" % (n, kills, counts, t_writes))

    verdict_a, verdict_b, converge_s = check_both_sites(w, a, b, seed, CONVERGE_TIMEOUT)
    st = a.status()
    failed = a.list_failed()
    assert st["events_failed"] == 0 and not failed, "events failed (seed %d): %s\n%s" % (seed, st, failed[:5])
    t = check_link(a, b, link)
    figures(seed=seed, link=link, wire_ratio=t["wire_bytes"] / t["payload_bytes"] if t else 1.0, rounds=n,
            kills="/".join(str(kills[v]) for v in VICTIMS), acked=counts["acked"], unknown=counts["unknown"],
            refused=counts["refused"], **damage(verdict_a, verdict_b), keys=verdict_a.keys,
            ambiguous=verdict_a.ambiguous, converge_s=converge_s,
            events_per_s=st["events_replicated"] / (time.monotonic() - t_start))


# --- the checker can fail --------------------------------------------------------------------------------------------


def test_allowed_states_follow_timing_and_versions():
    def put(t0, t1, v, tag, acked=True):
        return Op("put", "b", "k", t0, t1, version=v if acked else None, md5=tag, size=1, acked=acked)

    def delete(t0, t1, acked=True):
        return Op("delete", "b", "k", t0, t1, acked=acked)

    p1, p2 = put(0, 1, 5, "p1"), put(2, 3, 9, "p2")
    assert allowed_states([p1, p2]) == {(1, "p2")}
    assert allowed_states([put(0, 3, 9, "a"), put(1, 2, 7, "b")]) == {(1, "a")}  # overlapping: the version decides
    assert allowed_states([p1, put(2, 3, None, "u", acked=False)]) == {(1, "p1"), (1, "u")}
    assert allowed_states([put(0, 1, None, "u", acked=False)]) == {ABSENT, (1, "u")}
    assert allowed_states([p1, delete(2, 3)]) == {ABSENT}
    assert allowed_states([p1, delete(0.5, 3)]) == {ABSENT, (1, "p1")}  # concurrent: either may be last
    assert allowed_states([p1, delete(1.5, 1.8, acked=False), p2]) == {(1, "p2")}
    assert allowed_states([p1, Op("purge", "b", None, 2, 3), put(2.5, 4, None, "u", acked=False)]) == \
        {ABSENT, (1, "u")}


def test_checker_finds_lost_resurrected_and_torn(server):
    """Writes the record does not know of, made behind its back, are each caught and classified."""
    w = Workload()
    c = server.client()
    assert w.put(c, "chk", "overwritten", b"old").status == 200
    assert w.put(c, "chk", "overwritten", b"new").status == 200
    assert w.put(c, "chk", "kept", b"kept").status == 200
    assert w.put(c, "chk", "vanished", b"here").status == 200
    assert w.put(c, "chk", "deleted", b"gone").status == 200
    assert w.delete(c, "chk", "deleted").status == 204
    assert w.put(c, "chk", "scribbled", b"mine").status == 200
    assert w.put(c, "chk-p", "purged", b"p").status == 200
    assert w.purge(c, "chk-p").status == 200
    v = check_site(w, c, "the site")
    assert v.ok and v.present == 4, v.report()

    assert c.put("chk", "overwritten", b"old").status == 200  # an older write back: lost
    assert c.delete("chk", "vanished").status == 204  # lost
    assert c.put("chk", "deleted", b"gone").status == 200  # resurrected
    assert c.put("chk-p", "purged", b"p").status == 200  # resurrected
    assert c.put("chk", "scribbled", b"not mine").status == 200  # torn: no PUT sent these bytes
    assert c.put("chk", "stray", b"?").status == 200  # torn: nobody wrote this key
    v = check_site(w, c, "the site")
    print(v.report())
    assert v.counts == {"lost": 2, "resurrected": 2, "torn": 2}, v.report()
