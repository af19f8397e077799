"""test_apply_crash.py - the replica dies after committing a batch and before answering it: exactly once in effect.

B's storaged runs with the crash point COMIO_STORAGED_CRASH_AT=apply-committed
(storaged/commit.c, for tests only): the first replication batch it commits,
it exits right after the commit and before the reply is queued. A's repld
sees the connection close without an answer and sends the same batch again
once B is back (restarted without the crash point). Applying by version makes
the second delivery a no-op: every event of it is "skipped", nothing is
applied twice, nothing is lost, no conflict is recorded, and A's counters
count each event once (docs/replication.md, Delivery guarantees).
"""

import hashlib
import time

from harness.replication import comio_diff, wait_until

A_REPL = {"batch_size": 20, "retry_delay": "200ms", "inline_threshold": "64KB"}
CRASH_EXIT = 86  # storaged/commit.c CRASH_EXIT
CONVERGE_TIMEOUT = 60.0


def body(i, size):
    return (("object %d|" % i) * (size // 8 + 1)).encode()[:size]


def versions(site, objs):
    """{(bucket, key): (version, md5)} of objs on site (None when absent)."""
    c = site.client()
    try:
        out = {}
        for bk in objs:
            r = c.get(*bk)
            out[bk] = (r.header("X-Comio-Version"), hashlib.md5(r.body).hexdigest()) if r.status == 200 else None
        return out
    finally:
        c.close()


def test_replica_crash_between_commit_and_reply(sites, monkeypatch):
    a, b = sites(a_repl=A_REPL, start=False)
    monkeypatch.setenv("COMIO_STORAGED_CRASH_AT", "apply-committed")
    b.start_storaged()
    monkeypatch.delenv("COMIO_STORAGED_CRASH_AT")
    a.start()
    ca = a.client()

    # the first batch B commits (and dies) holds some of these: small objects and one fetched (over the inline
    # threshold); no later write touches them, so that repld sends that batch again as it was
    objs, events = {}, 0
    for i in range(12):
        objs[("crash", "k%02d" % i)] = body(i, 3000)
    objs[("crash", "large")] = body(99, 200 * 1024)
    for (bucket, key), data in objs.items():
        assert ca.put(bucket, key, data).status == 200
        events += 1

    # B dies at the crash point, by itself
    wait_until(lambda: b.storaged.proc.poll() is not None, 30, interval=0.05,
               what=lambda: "B's storaged exiting at the crash point\n" + b.storaged.log_tail(30))
    rc = b.storaged.proc.returncode
    assert rc == CRASH_EXIT, "B's storaged exited %s, not at the crash point; log:\n%s" % (rc, b.storaged.log_tail(40))
    assert "crash point apply-committed" in b.storaged.log()
    b.storaged.proc = None  # reaped: the harness starts it again below

    # more writes while B is down: new keys, one overwritten, one deleted
    later = {("later", "k%02d" % i): body(i, 2000) for i in range(8)}
    for (bucket, key), data in later.items():
        assert ca.put(bucket, key, data).status == 200
        events += 1
    later[("later", "k01")] = body(1001, 2500)
    assert ca.put("later", "k01", later[("later", "k01")]).status == 200
    assert ca.delete("later", "k00").status == 204
    del later[("later", "k00")]
    events += 2
    objs.update(later)
    time.sleep(0.5)  # a few of repld's retries find B away
    assert a.status()["log_pending"] > 0

    b.start_storaged()
    last = []

    def converged():
        nonlocal last
        last, counts = comio_diff(a, b)
        return not last and counts is not None and a.status()["log_pending"] == 0

    wait_until(converged, CONVERGE_TIMEOUT, interval=0.2, what=lambda: "comio diff clean: %s\n%s" % (last[:10],
                                                                                                    a.describe()))

    # nothing lost, nothing applied twice: the same bytes and versions on both sites, the delete kept
    va, vb = versions(a, objs), versions(b, objs)
    assert all(v is not None for v in va.values()), va
    assert va == vb, {k: (va[k], vb[k]) for k in va if va[k] != vb[k]}
    cb = b.client()
    assert cb.get("later", "k00").status == 404
    cb.close()

    # the second delivery was recognised as such: skipped on B, no conflict on either site
    m = b.client().metrics()
    skipped = m.value("comio_replica_events_total", result="skipped")
    print("B after the restart: %d applied, %d skipped" % (m.value("comio_replica_events_total", result="applied"),
                                                          skipped))
    assert skipped >= 1, m.text
    assert m.value("comio_replica_events_total", result="permanent") == 0
    for site in (a, b):
        st = site.status()
        assert st["conflicts"] == 0 and st["conflicts_kept"] == 0, (site.site_id, st)
        c = site.client()
        r = c.raw("GET", "/admin/conflicts")
        c.close()
        assert r.status == 200 and r.json()["conflicts"] == [], (site.site_id, r)
    # A counts every event once, none failed
    st = a.status()
    assert st["events_replicated"] == events and st["events_failed"] == 0 and a.list_failed() == [], (events, st)
