"""test_full_replica.py - the replica's store fills up; events fail as documented; room is made; one command re-drives.

B gets a data store far smaller than what A's clients write (small objects
inline, large ones fetched from A, overwrites of hot keys, DELETEs, a PURGE).
B answers 507 for what does not fit; A's repld retries each such event
retry_attempts times, then records it in the failed table (events_failed,
`repld --list-failed`, the seed's "Failed to replicate event" line). Room is
made on B, in one of the two ways docs/ offer:
  - delete_on_a: the old objects (the ones B holds) are deleted on A; B's
    deletes give their space back (docs/api.md);
  - grow_b: B is restarted with a larger server.storage_size, which may grow
    between runs (docs/configuration.md).
Then `repld --retry-failed`, and nothing else: B converges on A, the failed
table empties, and A (and B) hold what the client was told.
"""

import random
import time

import pytest

from harness.recorder import assert_site_matches, check_site, damage, inline_threshold, op_counts
from harness.replication import Workload, payload, snapshot, wait_converged, wait_until


B_SIZE = "2MB"
B_GROWN = "8MB"
A_REPL = {"batch_size": 20, "retry_attempts": 2, "retry_delay": "200ms"}
KEYS = 48  # about 3 MB in all: half again what B can hold
HOT = 3
CONVERGE_TIMEOUT = 60.0


def write_more_than_b_holds(w, ca, rng, threshold):
    """The workload: a PURGEd bucket, then KEYS objects (every third one fetched), overwrites of HOT
    keys, and a few DELETEs. Every request must be acknowledged: A has room to spare."""
    def ok(r, status=200):
        assert r is not None and r.status == status, r

    for i in range(5):
        ok(w.put(ca, "full-tmp", "t%d" % i, payload("tmp%d" % i, 40_000, rng)))
    ok(w.purge(ca, "full-tmp"))
    for i in range(KEYS):
        size = rng.randrange(threshold + 1, 160_000) if i % 3 == 0 else rng.randrange(20_000, threshold)
        ok(w.put(ca, "full", "k%02d" % i, payload("k%d" % i, size, rng)))
        if i % 4 == 3:
            key = "hot%d" % (i % HOT)
            ok(w.put(ca, "full", key, payload("%s-%d" % (key, i), rng.randrange(1000, 30_000), rng)))
        if i % 9 == 8:
            ok(w.delete(ca, "full", "k%02d" % (i - 4)), 204)


def failed_ok(st):
    """A's status once every event is either acknowledged or recorded as failed, and some failed."""
    return st if st["events_pending"] == 0 and st["events_failed"] > 0 else None


@pytest.mark.parametrize("room", ["delete_on_a", "grow_b"])
def test_full_replica_then_retry_failed(sites, figures, room):
    a, b = sites(a_repl=A_REPL, b_kw={"size": B_SIZE})
    w = Workload()
    ca = a.client()
    rng = random.Random(77)
    t_start = time.monotonic()
    write_more_than_b_holds(w, ca, rng, inline_threshold(A_REPL))
    assert_site_matches(w, a, "A")

    st = wait_until(lambda: failed_ok(a.status()), 60,
                    what=lambda: "events recorded as failed once B is full\n" + a.describe() + "\n" + b.describe())
    failed = a.list_failed()
    print("B full: %d events failed, e.g. %s" % (len(failed), failed[:1]))
    assert len(failed) == st["events_failed"], (failed, st)
    assert all("507" in f["error"] for f in failed), "failures other than 507 (out of space): %s" % failed
    seed_lines = [e for e in a.repld.log_json() if e.get("msg") == "Failed to replicate event"]
    assert len(seed_lines) >= len(failed) and all("507" in e["error"] for e in seed_lines), seed_lines[:3]
    # B differs from A only in the keys whose events failed (missing, or an older write); nothing is torn
    sa, sb = snapshot(a), snapshot(b)
    held = sb.get("full", {})
    assert held and len(held) < len(sa["full"]), "B holds %d of A's %d objects" % (len(held), len(sa["full"]))
    differ = {k for k in set(held) | set(sa["full"]) if held.get(k) != sa["full"].get(k)}
    failed_keys = {f["key"] for f in failed}
    assert differ <= failed_keys, "B differs from A in keys whose events did not fail: %s" % sorted(
        differ - failed_keys)
    torn = check_site(w, b, "B", snap=sb).counts["torn"]
    assert torn == 0, check_site(w, b, "B").report()
    assert "full-tmp" not in sb, "the PURGE did not reach B: %s" % sb.get("full-tmp")

    # make room on B, then the one command
    if room == "delete_on_a":
        for k in sorted(held):
            assert w.delete(ca, "full", k).status == 204
        wait_until(lambda: not snapshot(b).get("full"), 30,
                   what=lambda: "the deletes applied on B\n" + b.describe())
    else:
        b.stop_storaged()
        b.size = B_GROWN
        b.write_config()
        b.start_storaged()
    assert a.status()["events_failed"] == len(failed), "the failed table changed before --retry-failed"
    t0 = time.monotonic()
    a.retry_failed()
    d = wait_converged(a, b, timeout=CONVERGE_TIMEOUT, sample=None)
    converge_s = time.monotonic() - t0
    assert not d, "B did not converge on A after --retry-failed:\n%s\n--- A:\n%s\n--- B:\n%s" % (
        "\n".join(d[:30]), a.describe(), b.describe())
    st = wait_until(lambda: (lambda s: s if s["events_pending"] == 0 else None)(a.status()), 30,
                    what=lambda: "A's log drained\n" + a.describe())
    assert st["events_failed"] == 0 and a.list_failed() == [], st
    verdict_a = assert_site_matches(w, a, "A")
    verdict_b = assert_site_matches(w, b, "B")
    counts = op_counts(w)
    figures(room=room, acked=counts["acked"], unknown=counts["unknown"], failed_on_full=len(failed),
            b_objects_when_full=len(held), **damage(verdict_a, verdict_b), converge_s=converge_s,
            total_s=time.monotonic() - t_start)
